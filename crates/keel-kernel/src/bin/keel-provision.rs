//! `keel-provision --admin-url <superuser URL> [--nats-admin-url <NATS admin URL>] --config config/<service>.yaml`
//!
//! Creates the role and schema a service's config connects with (LOGIN, no BYPASSRLS, owning only
//! its schema), if missing, through `keel_kernel::db::provision`; with `--nats-admin-url`, also
//! creates or reconciles the event stream, which the services' own NATS users may not change. For
//! local stacks (`make run`); in Kubernetes the database operator owns roles and the NATS chart's
//! admin provisions the stream.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use keel_kernel::config::{Config, Validate};
use secrecy::ExposeSecret;

/// Any service's own settings: provisioning reads only the kernel's sections.
#[derive(Debug, Default, serde::Deserialize)]
struct AnySettings(#[allow(dead_code)] serde_yaml::Value);

impl Validate for AnySettings {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("keel-provision: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let (mut admin_url, mut nats_admin_url, mut config_path) = (None, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--admin-url" => admin_url = args.next(),
            "--nats-admin-url" => nats_admin_url = args.next(),
            "--config" => config_path = args.next().map(PathBuf::from),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let admin_url = admin_url.ok_or("--admin-url is required")?;
    let config_path = config_path.ok_or("--config is required")?;
    let config = Config::<AnySettings>::load(&config_path).map_err(|err| err.to_string())?;
    let (role, password) = credentials(config.database.url.expose_secret())
        .ok_or("config key `database.url`: must name a user and a password")?;
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .map_err(|err| format!("cannot connect with --admin-url: {err}"))?;
    keel_kernel::db::provision(&admin, &config.database.schema, &role, &password)
        .await
        .map_err(|err| err.to_string())?;
    let mut done = format!(
        "{}: role {role} and schema {} ready",
        config.service, config.database.schema
    );
    if let Some(url) = nats_admin_url {
        let nats = keel_kernel::config::NatsConfig {
            url,
            ..config.nats.clone()
        };
        let client = keel_kernel::nats::connect("keel-provision", &nats)
            .await
            .map_err(|err| err.to_string())?;
        let js = async_nats::jetstream::new(client);
        keel_kernel::nats::ensure_stream(&js, &nats)
            .await
            .map_err(|err| format!("{err:?}"))?;
        done.push_str(&format!(", stream {} ready", nats.stream));
    }
    Ok(done)
}

/// `postgres://user:password@host/db` → (user, password).
fn credentials(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    let (user, password) = userinfo.split_once(':')?;
    (!user.is_empty() && !password.is_empty()).then(|| (user.to_owned(), password.to_owned()))
}
