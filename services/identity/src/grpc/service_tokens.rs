//! Service tokens: the client-credentials grant through which another service of the mesh
//! obtains a short-lived token of its own (`AuthService.IssueServiceToken`).

use keel_kernel::{Error, RequestMeta};
use keel_proto::identity::v1 as pb;

use super::auth::Auth;
use crate::domain::lockout;

/// The one answer to an unknown client or a wrong secret: it never says which.
fn bad_client_credentials() -> Error {
    Error::unauthenticated("invalid client credentials")
}

impl Auth {
    #[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
    pub(super) async fn issue_service_token(
        &self,
        meta: &RequestMeta,
        request: pb::IssueServiceTokenRequest,
    ) -> Result<pb::IssueServiceTokenResponse, Error> {
        let ctx = &self.0;
        let mut fields = keel_kernel::Violations::default();
        if request.client_id.trim().is_empty() {
            fields.add("client_id", "is required");
        }
        if request.client_secret.is_empty() {
            fields.add("client_secret", "is required");
        }
        fields.finish()?;

        // Guessing a client's secret is throttled like guessing a password: per client and
        // address, per client, and per address.
        let throttles = lockout::throttles(
            &ctx.settings.lockout,
            &format!("service-client:{}", request.client_id),
            &meta.client_ip,
        );
        self.reserve_attempt(&throttles).await?;
        let Some(client) = ctx
            .service_clients
            .authenticate(&request.client_id, &request.client_secret)
        else {
            tracing::warn!("service token refused: bad client credentials");
            return Err(bad_client_credentials());
        };
        self.give_back_attempt(&throttles, true).await?;

        let permissions = if request.permissions.is_empty() {
            client.permissions.clone()
        } else {
            let mut wanted: Vec<String> = Vec::with_capacity(request.permissions.len());
            for permission in &request.permissions {
                if !client.permissions.contains(permission) {
                    return Err(Error::forbidden(format!(
                        "client {} may not hold {permission}",
                        client.client_id
                    )));
                }
                if !wanted.contains(permission) {
                    wanted.push(permission.clone());
                }
            }
            wanted
        };
        let token = ctx.tokens.service_token(&client.client_id, &permissions)?;
        tracing::info!(expires_in = token.expires_in, "service token issued");
        Ok(pb::IssueServiceTokenResponse {
            access_token: token.token,
            expires_in: token.expires_in as i32,
            token_type: "Bearer".into(),
            permissions,
        })
    }
}
