//! Identity's own settings: the `app:` section of `config/identity.yaml`.

use std::path::PathBuf;

use keel_kernel::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    pub signing: SigningSettings,
    pub tokens: TokenSettings,
    pub password_hashing: HashingSettings,
    pub lockout: LockoutSettings,
    /// Emails (any case) of platform admins: their unscoped tokens carry the platform rights
    /// (approving, suspending, reactivating and reading any tenant).
    pub platform_admins: Vec<String>,
    /// The other services of the mesh that may obtain service tokens (`IssueServiceToken`), each
    /// with its secret and the permissions its tokens may carry.
    pub service_clients: Vec<ServiceClientSettings>,
}

/// One service client: a service of the mesh that authenticates with a secret (OAuth 2.0 client
/// credentials). The secret is given either as its SHA-256 (hex; the secret itself then lives
/// only in the client's config) or as a file holding the secret (a mounted Kubernetes Secret
/// shared by identity and the client). Exactly one of the two.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceClientSettings {
    /// The token's subject, e.g. `notifications`: `[a-z][a-z0-9-]*`.
    pub client_id: String,
    /// Lowercase hex SHA-256 of the secret (`printf %s "$SECRET" | sha256sum`).
    pub secret_sha256: Option<String>,
    /// A file whose content (trailing whitespace trimmed) is the secret.
    pub secret_file: Option<PathBuf>,
    /// Permission names the client's tokens may carry: catalogue or service-only permissions.
    pub permissions: Vec<String>,
}

/// Signing keys come from files (mounted secrets in Kubernetes, `.dev/keys` locally), never from
/// source. Every listed key is published in the JWKS; only `active_kid` signs. Rotation: add the
/// new key, wait at least the verifiers' JWKS refetch interval, switch `active_kid`, and remove the
/// old key once the last token it signed has expired (the access-token TTL).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningSettings {
    pub active_kid: String,
    pub keys: Vec<SigningKeyFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyFile {
    pub kid: String,
    /// A PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`).
    pub private_key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// Access tokens are short-lived: role changes and revocations reach services by expiry.
    pub access_ttl_secs: u64,
    /// A session ends unless refreshed within this long.
    pub refresh_ttl_secs: u64,
    pub api_key_token_ttl_secs: u64,
    pub email_verification_ttl_secs: u64,
    /// Service tokens (`IssueServiceToken`): short, since a service simply asks again.
    pub service_token_ttl_secs: u64,
    /// How long a password-reset token works after it was requested.
    pub password_reset_ttl_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            api_key_token_ttl_secs: 5 * 60,
            email_verification_ttl_secs: 24 * 3600,
            service_token_ttl_secs: 5 * 60,
            password_reset_ttl_secs: 3600,
        }
    }
}

/// argon2id cost. The defaults are OWASP's minimum (19 MiB, 2 passes); tests lower them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Memory all concurrent hashes and checks may use together. Each one holds `memory_kib`, so
    /// at most `memory_budget_mib * 1024 / memory_kib` run at once (at least one): the default
    /// 128 MiB / 19 MiB allows 6, about 114 MiB, within the pod's 512 MiB with room for the rest.
    pub memory_budget_mib: u32,
    /// How long a request waits for its turn to hash before it is answered UNAVAILABLE with a
    /// Retry-After; 0 means it does not wait at all.
    pub queue_timeout_ms: u64,
}

impl HashingSettings {
    /// How many hashes fit in the memory budget at once (see `memory_budget_mib`).
    pub fn concurrent_hashes(&self) -> usize {
        let budget_kib = u64::from(self.memory_budget_mib) * 1024;
        let per_hash_kib = u64::from(self.memory_kib.max(1));
        usize::try_from(budget_kib / per_hash_kib)
            .unwrap_or(usize::MAX)
            // Validation guarantees room for one; a budget below that would deadlock every login.
            .max(1)
    }
}

impl Default for HashingSettings {
    fn default() -> Self {
        HashingSettings {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            memory_budget_mib: 128,
            queue_timeout_ms: 2_000,
        }
    }
}

/// Brute-force protection. Three counters see every attempt, each reserved before the password
/// is checked (so parallel attempts cannot overtake it):
/// - per (account, client IP): `account_threshold` failures lock that pair out for `lock_secs`.
///   The attacker's address is locked; the real user's address is not.
/// - per account, from every address: past `account_delay_threshold` failures each attempt on
///   the account waits the escalating delay (at most `max_delay_ms`), but it is never locked, so
///   nobody can lock someone else out; a distributed guesser is slowed to one guess per delay.
/// - per client IP, across accounts: `ip_threshold` failures lock that address out (spraying).
///
/// On every counter the first `free_attempts` failures within `window_secs` cost nothing; later
/// ones wait `base_delay_ms`, doubling up to `max_delay_ms`. A quiet window resets a counter;
/// a successful login resets its (account, IP) counter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSettings {
    /// Failures counted within this window; the count restarts after a quiet window.
    pub window_secs: u64,
    /// Failures allowed without any delay.
    pub free_attempts: u32,
    /// The delay after the first delayed failure; it doubles with each further failure.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Failures on one account from one client IP that lock that pair for `lock_secs`.
    pub account_threshold: u32,
    /// Failures on one account from all addresses after which every attempt on it is delayed.
    pub account_delay_threshold: u32,
    /// Failures from one IP that lock it out for `lock_secs`.
    pub ip_threshold: u32,
    pub lock_secs: u64,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            window_secs: 15 * 60,
            free_attempts: 3,
            base_delay_ms: 500,
            max_delay_ms: 8_000,
            account_threshold: 10,
            account_delay_threshold: 100,
            ip_threshold: 50,
            lock_secs: 15 * 60,
        }
    }
}

impl Validate for IdentitySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.signing.keys.is_empty() {
            return Err(ConfigError::invalid(
                "app.signing.keys",
                "must list at least one signing key file",
            ));
        }
        for (i, key) in self.signing.keys.iter().enumerate() {
            if key.kid.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("app.signing.keys[{i}].kid"),
                    "must not be empty",
                ));
            }
            if self.signing.keys[..i]
                .iter()
                .any(|other| other.kid == key.kid)
            {
                return Err(ConfigError::invalid(
                    format!("app.signing.keys[{i}].kid"),
                    "is listed twice",
                ));
            }
        }
        if !self
            .signing
            .keys
            .iter()
            .any(|key| key.kid == self.signing.active_kid)
        {
            return Err(ConfigError::invalid(
                "app.signing.active_kid",
                "must be the kid of one of app.signing.keys",
            ));
        }
        let t = &self.tokens;
        for (key, value) in [
            ("app.tokens.access_ttl_secs", t.access_ttl_secs),
            ("app.tokens.refresh_ttl_secs", t.refresh_ttl_secs),
            (
                "app.tokens.api_key_token_ttl_secs",
                t.api_key_token_ttl_secs,
            ),
            (
                "app.tokens.email_verification_ttl_secs",
                t.email_verification_ttl_secs,
            ),
            (
                "app.tokens.service_token_ttl_secs",
                t.service_token_ttl_secs,
            ),
            (
                "app.tokens.password_reset_ttl_secs",
                t.password_reset_ttl_secs,
            ),
        ] {
            if value == 0 || value > i32::MAX as u64 {
                return Err(ConfigError::invalid(
                    key,
                    "must be a positive number of seconds",
                ));
            }
        }
        let h = &self.password_hashing;
        argon2::Params::new(h.memory_kib, h.iterations, h.parallelism, None)
            .map_err(|err| ConfigError::invalid("app.password_hashing", err.to_string()))?;
        let l = &self.lockout;
        if u64::from(h.memory_budget_mib) * 1024 < u64::from(h.memory_kib) {
            return Err(ConfigError::invalid(
                "app.password_hashing.memory_budget_mib",
                "must hold at least one hash (memory_kib)",
            ));
        }
        if l.account_threshold == 0 || l.account_delay_threshold == 0 || l.ip_threshold == 0 {
            return Err(ConfigError::invalid(
                "app.lockout",
                "thresholds must be at least 1",
            ));
        }
        if l.window_secs == 0 || l.lock_secs == 0 {
            return Err(ConfigError::invalid(
                "app.lockout",
                "window_secs and lock_secs must be positive",
            ));
        }
        self.validate_service_clients()
    }
}

impl IdentitySettings {
    fn validate_service_clients(&self) -> Result<(), ConfigError> {
        use crate::domain::permissions;
        for (i, client) in self.service_clients.iter().enumerate() {
            let key = |field: &str| format!("app.service_clients[{i}].{field}");
            let id = &client.client_id;
            let well_formed = id.starts_with(|c: char| c.is_ascii_lowercase())
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !well_formed || id.len() > 63 {
                return Err(ConfigError::invalid(
                    key("client_id"),
                    "must be 1-63 characters of [a-z0-9-], starting with a letter",
                ));
            }
            if self.service_clients[..i]
                .iter()
                .any(|other| &other.client_id == id)
            {
                return Err(ConfigError::invalid(key("client_id"), "is listed twice"));
            }
            match (&client.secret_sha256, &client.secret_file) {
                (Some(hash), None) => {
                    let ok = hash.len() == 64
                        && hash
                            .chars()
                            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
                    if !ok {
                        return Err(ConfigError::invalid(
                            key("secret_sha256"),
                            "must be 64 lowercase hex digits (a SHA-256)",
                        ));
                    }
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(ConfigError::invalid(
                        key("secret_sha256"),
                        "exactly one of secret_sha256 and secret_file must be set",
                    ));
                }
            }
            if client.permissions.is_empty() {
                return Err(ConfigError::invalid(
                    key("permissions"),
                    "must list at least one permission",
                ));
            }
            for (j, permission) in client.permissions.iter().enumerate() {
                if !permissions::is_known(permission) && !permissions::is_service_only(permission) {
                    return Err(ConfigError::invalid(
                        format!("app.service_clients[{i}].permissions[{j}]"),
                        format!("{permission} is not a catalogue or service-only permission"),
                    ));
                }
            }
        }
        Ok(())
    }
}
