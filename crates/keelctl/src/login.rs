//! `keelctl login`: a platform admin's access token from identity, for KEELCTL_TOKEN.

use std::io::BufRead;

use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use serde_json::json;

use crate::cli::{Global, LoginArgs};
use crate::error::{Failure, Outcome};
use crate::output::{Report, Table};

pub async fn run(global: &Global, args: LoginArgs) -> Outcome<Report> {
    let password = match std::env::var("KEELCTL_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|err| {
                    Failure::failed(format!("reading the password from stdin: {err}"))
                })?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        return Err(Failure::failed(
            "no password: set KEELCTL_PASSWORD or pass it on standard input",
        ));
    }
    let target = format!("identity at {}", global.identity_grpc);
    let mut client = AuthServiceClient::new(crate::grpc::channel(&global.identity_grpc)?);
    let pair = client
        .login(pb::LoginRequest {
            email: args.email.clone(),
            password,
        })
        .await
        .map_err(|status| Failure::from_status(&target, &status))?
        .into_inner();
    Ok(Report {
        table: Table::lines([pair.access_token.clone()]),
        json: json!({
            "accessToken": pair.access_token,
            "expiresIn": pair.expires_in,
            "tokenType": pair.token_type,
        }),
        unreachable: Vec::new(),
    })
}
