//! `keelctl keys`: identity's signing keys.
//!
//! Identity reads its keys from files at start (`app.signing`): every listed key is published in
//! the JWKS, `active_kid` signs. There is no runtime rotation API, on purpose: a key change is a
//! config (and Secret) change rolled out like any other. So `keys rotate` makes the new key file
//! and prints the three configuration steps, with the waits between them, and `keys list` shows
//! what identity publishes right now, to confirm each step has rolled out.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use serde_json::json;

use crate::cli::{Global, KeysCommand};
use crate::error::{Failure, Outcome};
use crate::output::{Report, Table};

/// Verifiers refetch the JWKS for an unknown `kid` at most this often (`auth.jwks_min_refetch_secs`
/// default), so a new key must be published this long before it signs.
const DEFAULT_JWKS_REFETCH_SECS: u64 = 30;
/// `app.tokens.access_ttl_secs` default: the old key must stay published this long after it stops
/// signing.
const DEFAULT_ACCESS_TTL_SECS: u64 = 900;

pub async fn run(global: &Global, command: KeysCommand) -> Outcome<Report> {
    match command {
        KeysCommand::List => list(global).await,
        KeysCommand::Rotate {
            key_dir,
            kid,
            identity_config,
        } => rotate(&key_dir, kid, &identity_config),
    }
}

async fn list(global: &Global) -> Outcome<Report> {
    let target = format!("identity at {}", global.identity_grpc);
    let mut client = AuthServiceClient::new(crate::grpc::channel(&global.identity_grpc)?);
    let jwks = client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .map_err(|status| Failure::from_status(&target, &status))?
        .into_inner();
    let mut table = Table::new(["KID", "ALG", "TYPE", "SIGNS"]).when_empty("no keys published");
    let mut keys = Vec::new();
    // Identity publishes the active key first.
    for (i, key) in jwks.keys.iter().enumerate() {
        table.row([
            key.kid.clone(),
            key.alg.clone(),
            key.kty.clone(),
            if i == 0 { "yes" } else { "no" }.to_owned(),
        ]);
        keys.push(json!({ "kid": key.kid, "alg": key.alg, "kty": key.kty, "active": i == 0 }));
    }
    Ok(Report {
        table,
        json: json!({ "keys": keys }),
        unreachable: Vec::new(),
    })
}

/// The signing section of identity's config, as far as rotation needs it.
struct CurrentSigning {
    active_kid: String,
    keys: Vec<(String, String)>,
    access_ttl_secs: u64,
}

fn read_current(path: &Path) -> Outcome<CurrentSigning> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::failed(format!("cannot read {}: {err}", path.display())))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|err| Failure::failed(format!("{}: {err}", path.display())))?;
    let signing = &doc["app"]["signing"];
    let keys = signing["keys"]
        .as_sequence()
        .map(|keys| {
            keys.iter()
                .map(|key| {
                    (
                        key["kid"].as_str().unwrap_or_default().to_owned(),
                        key["private_key_file"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CurrentSigning {
        active_kid: signing["active_kid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        keys,
        access_ttl_secs: doc["app"]["tokens"]["access_ttl_secs"]
            .as_u64()
            .unwrap_or(DEFAULT_ACCESS_TTL_SECS),
    })
}

/// A fresh Ed25519 key as PKCS#8 PEM, the format identity (and `openssl genpkey`) uses.
fn new_key_pem() -> Outcome<String> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key
        .to_pkcs8_der()
        .map_err(|err| Failure::failed(format!("encoding the new key: {err}")))?;
    let body = STANDARD.encode(der.as_bytes());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    Ok(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    ))
}

fn write_private(path: &Path, contents: &str) -> Outcome<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|err| Failure::failed(format!("cannot create {}: {err}", path.display())))?;
    file.write_all(contents.as_bytes())
        .map_err(|err| Failure::failed(format!("cannot write {}: {err}", path.display())))
}

fn signing_yaml(active: &str, keys: &[(String, String)]) -> String {
    let mut out = format!("app:\n  signing:\n    active_kid: {active}\n    keys:\n");
    for (kid, file) in keys {
        out.push_str(&format!(
            "      - kid: {kid}\n        private_key_file: {file}\n"
        ));
    }
    out
}

fn rotate(key_dir: &Path, kid: Option<String>, identity_config: &Path) -> Outcome<Report> {
    let current = read_current(identity_config)?;
    let kid = kid.unwrap_or_else(|| format!("key-{}", chrono::Utc::now().format("%Y%m%d%H%M%S")));
    if kid.trim().is_empty() || kid.contains(['/', '\\', ' ']) {
        return Err(Failure::failed(format!(
            "--kid {kid:?}: a key id must be non-empty, without spaces or slashes"
        )));
    }
    if current.keys.iter().any(|(existing, _)| *existing == kid) {
        return Err(Failure::failed(format!(
            "--kid {kid}: {} already lists a key with this id",
            identity_config.display()
        )));
    }
    std::fs::create_dir_all(key_dir)
        .map_err(|err| Failure::failed(format!("cannot create {}: {err}", key_dir.display())))?;
    let file: PathBuf = key_dir.join(format!("{kid}.pem"));
    write_private(&file, &new_key_pem()?)?;
    let file_name = file.display().to_string();

    let mut published = current.keys.clone();
    published.push((kid.clone(), file_name.clone()));
    let retired: Vec<(String, String)> = published
        .iter()
        .filter(|(k, _)| *k == kid)
        .cloned()
        .collect();
    let steps = vec![
        json!({
            "step": 1,
            "do": format!("publish the new key: add it to identity's config (and its key Secret), keep active_kid {}, roll out identity", current.active_kid),
            "config": signing_yaml(&current.active_kid, &published),
        }),
        json!({
            "step": 2,
            "waitSeconds": DEFAULT_JWKS_REFETCH_SECS,
            "do": format!("after every verifier can have refetched the JWKS (auth.jwks_min_refetch_secs, default {DEFAULT_JWKS_REFETCH_SECS}s; `keelctl keys list` shows {kid}), make it the signing key and roll out identity"),
            "config": signing_yaml(&kid, &published),
        }),
        json!({
            "step": 3,
            "waitSeconds": current.access_ttl_secs,
            "do": format!("once the last token signed by the old key has expired (app.tokens.access_ttl_secs = {}s), drop the old key(s) and roll out identity", current.access_ttl_secs),
            "config": signing_yaml(&kid, &retired),
        }),
    ];
    let mut lines = vec![format!(
        "wrote {file_name} (kid {kid}, Ed25519, PKCS#8 PEM, mode 0600)"
    )];
    for step in &steps {
        lines.push(String::new());
        lines.push(format!(
            "{}. {}",
            step["step"],
            step["do"].as_str().unwrap_or_default()
        ));
        lines.extend(
            step["config"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .map(|line| format!("   {line}")),
        );
    }
    Ok(Report {
        table: Table::lines(lines),
        json: json!({ "kid": kid, "file": file_name, "steps": steps }),
        unreachable: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_a_pkcs8_ed25519_pem_that_reads_back() {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let pem = new_key_pem().expect("a key");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).expect("base64");
        ed25519_dalek::SigningKey::from_pkcs8_der(&der).expect("an Ed25519 PKCS#8 key");
    }
}
