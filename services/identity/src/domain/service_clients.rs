//! The service clients of the mesh (OAuth 2.0 client credentials): who may obtain a service token,
//! with which secret, carrying which permissions. Loaded once from `app.service_clients`.
//!
//! Secrets are random and long, so a SHA-256 of them is as good as a password hash here and
//! costs nothing; comparison is constant-time, and an unknown client is compared against a
//! dummy digest so that it takes as long as a known one with a wrong secret.

use keel_kernel::Error;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::settings::ServiceClientSettings;

/// One client as identity checks it.
#[derive(Clone)]
pub struct ServiceClient {
    pub client_id: String,
    secret_digest: [u8; 32],
    pub permissions: Vec<String>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("client_id", &self.client_id)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

/// Every configured client.
#[derive(Debug, Clone, Default)]
pub struct ServiceClients {
    clients: Vec<ServiceClient>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl ServiceClients {
    /// Read the configured clients, their secret files included. Errors name the config key.
    pub fn load(settings: &[ServiceClientSettings]) -> Result<ServiceClients, Error> {
        let mut clients = Vec::with_capacity(settings.len());
        for (i, entry) in settings.iter().enumerate() {
            let secret_digest = match (&entry.secret_sha256, &entry.secret_file) {
                (Some(hex_digest), _) => {
                    let bytes = hex::decode(hex_digest).ok().and_then(|b| b.try_into().ok());
                    bytes.ok_or_else(|| {
                        Error::internal(anyhow::anyhow!(
                            "config key `app.service_clients[{i}].secret_sha256`: not a hex SHA-256"
                        ))
                    })?
                }
                (None, Some(path)) => {
                    let secret = std::fs::read_to_string(path).map_err(|err| {
                        Error::internal(anyhow::anyhow!(
                            "config key `app.service_clients[{i}].secret_file`: cannot read {}: {err}",
                            path.display()
                        ))
                    })?;
                    let secret = secret.trim_end();
                    if secret.len() < 16 {
                        return Err(Error::internal(anyhow::anyhow!(
                            "config key `app.service_clients[{i}].secret_file`: {} holds fewer than 16 characters",
                            path.display()
                        )));
                    }
                    digest(secret)
                }
                (None, None) => {
                    return Err(Error::internal(anyhow::anyhow!(
                        "config key `app.service_clients[{i}]`: no secret_sha256 or secret_file"
                    )));
                }
            };
            clients.push(ServiceClient {
                client_id: entry.client_id.clone(),
                secret_digest,
                permissions: entry.permissions.clone(),
            });
        }
        Ok(ServiceClients { clients })
    }

    /// The client `client_id` if `secret` is its secret. Every client's digest is compared, in
    /// constant time, whatever the id: the answer's timing says nothing about which ids exist.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> Option<&ServiceClient> {
        let presented = digest(secret);
        let mut found = None;
        for client in &self.clients {
            let secret_matches: bool = client.secret_digest.ct_eq(&presented).into();
            if secret_matches && client.client_id == client_id {
                found = Some(client);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> ServiceClients {
        ServiceClients::load(&[ServiceClientSettings {
            client_id: "notifications".into(),
            secret_sha256: Some(hex::encode(digest("a-long-enough-secret"))),
            secret_file: None,
            permissions: vec!["identity.verification.issue".into()],
        }])
        .unwrap()
    }

    #[test]
    fn only_the_right_secret_for_the_right_client_authenticates() {
        let clients = clients();
        assert!(
            clients
                .authenticate("notifications", "a-long-enough-secret")
                .is_some()
        );
        assert!(clients.authenticate("notifications", "wrong").is_none());
        assert!(
            clients
                .authenticate("billing", "a-long-enough-secret")
                .is_none()
        );
    }

    #[test]
    fn debug_output_never_shows_the_digest() {
        let shown = format!("{:?}", clients());
        assert!(!shown.contains(&hex::encode(digest("a-long-enough-secret"))));
        assert!(!shown.contains("secret_digest"));
    }
}
