//! The password policy and argon2id hashing.

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use keel_kernel::metrics::MetricsRegistry;
use keel_kernel::{Error, FieldViolation};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::lockout::try_again_in;
use crate::settings::HashingSettings;

pub const MIN_LENGTH: usize = 10;
/// Long enough for any passphrase; short enough that hashing it is never a denial of service.
pub const MAX_LENGTH: usize = 256;

/// A password that satisfies the policy. Never logged, never stored: only its hash is.
pub struct Password(String);

impl Password {
    /// Check `value` against every rule and report each unmet rule as its own violation on
    /// `field`, so a client can show the whole list at once.
    pub fn parse(field: &str, value: &str) -> Result<Password, Error> {
        let missing = Password::unmet_rules(value);
        if missing.is_empty() {
            return Ok(Password(value.to_owned()));
        }
        Err(Error::invalid_fields(
            missing
                .into_iter()
                .map(|description| FieldViolation {
                    field: field.to_owned(),
                    description: description.to_owned(),
                })
                .collect(),
        ))
    }

    /// The rules `value` breaks, each phrased as what is missing.
    pub fn unmet_rules(value: &str) -> Vec<&'static str> {
        let mut missing = Vec::new();
        let length = value.chars().count();
        if length < MIN_LENGTH {
            missing.push("must be at least 10 characters long");
        }
        if length > MAX_LENGTH {
            missing.push("must be at most 256 characters long");
        }
        if !value.chars().any(char::is_lowercase) {
            missing.push("must contain a lowercase letter");
        }
        if !value.chars().any(char::is_uppercase) {
            missing.push("must contain an uppercase letter");
        }
        if !value.chars().any(|c| c.is_ascii_digit()) {
            missing.push("must contain a digit");
        }
        missing
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// argon2id with the configured cost. Hashing is CPU-bound: callers run it on the blocking pool,
/// and only as many at once as the memory budget holds (each hash allocates `memory_kib`).
#[derive(Clone)]
pub struct PasswordHasherConfig {
    params: Params,
    gate: Arc<HashingGate>,
}

/// The memory budget as permits, one per running hash, and what it reports.
struct HashingGate {
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    in_flight: Gauge,
    /// The most hashes ever held at once: what shows the budget holds under load.
    in_flight_max: Gauge,
    /// Requests that waited `queue_timeout` without a permit and were turned away.
    rejected: Counter,
}

/// A running hash's share of the budget; it goes back when the hash ends, even if the request
/// that asked for it was cancelled meanwhile (the blocking task owns it).
struct HashingPermit {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Drop for HashingPermit {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl HashingGate {
    async fn enter(&self) -> Result<HashingPermit, Error> {
        let permit = if self.queue_timeout.is_zero() {
            self.permits.clone().try_acquire_owned().ok()
        } else {
            tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        let Some(permit) = permit else {
            self.rejected.inc();
            let wait = Duration::from_secs(1);
            return Err(Error::unavailable(format!(
                "too many passwords are being checked; {}",
                try_again_in(wait)
            ))
            .with_retry_after(wait));
        };
        let now = self.in_flight.inc() + 1;
        self.in_flight_max.inner().fetch_max(now, Ordering::Relaxed);
        Ok(HashingPermit {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        })
    }
}

impl PasswordHasherConfig {
    pub fn new(settings: &HashingSettings) -> Result<Self, Error> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|err| Error::internal(anyhow::anyhow!("app.password_hashing: {err}")))?;
        let gate = HashingGate {
            permits: Arc::new(Semaphore::new(settings.concurrent_hashes())),
            queue_timeout: Duration::from_millis(settings.queue_timeout_ms),
            in_flight: Gauge::default(),
            in_flight_max: Gauge::default(),
            rejected: Counter::default(),
        };
        Ok(PasswordHasherConfig {
            params,
            gate: Arc::new(gate),
        })
    }

    /// Report the hashing budget's use on the service's `/metrics`.
    pub fn register_metrics(&self, registry: &MetricsRegistry) {
        let gate = &self.gate;
        registry.register(
            "password_hashing_in_flight",
            "Password hashes and checks running now",
            gate.in_flight.clone(),
        );
        registry.register(
            "password_hashing_in_flight_max",
            "The most password hashes and checks that ran at once (bounded by the memory budget)",
            gate.in_flight_max.clone(),
        );
        registry.register(
            "password_hashing_rejected",
            "Requests refused because no password hashing slot freed up in time",
            gate.rejected.clone(),
        );
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=..`): it carries its own salt and cost, so raising the cost
    /// later does not break existing hashes.
    pub fn hash(&self, password: &str) -> Result<String, Error> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| Error::internal(anyhow::anyhow!("password hashing failed: {err}")))
    }

    /// Whether `password` matches `phc`. A malformed stored hash counts as a mismatch (and is
    /// logged), so it can never let anyone in.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(err) => {
                tracing::error!(error = %err, "stored password hash is malformed");
                false
            }
        }
    }

    /// Hash on the blocking pool, within the memory budget.
    pub async fn hash_async(&self, password: String) -> Result<String, Error> {
        let permit = self.gate.enter().await?;
        let hasher = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hasher.hash(&password)
        })
        .await
        .map_err(|err| Error::internal(anyhow::anyhow!("hashing task failed: {err}")))?
    }

    /// Verify on the blocking pool, within the memory budget.
    pub async fn verify_async(&self, password: String, phc: String) -> Result<bool, Error> {
        let permit = self.gate.enter().await?;
        let hasher = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hasher.verify(&password, &phc)
        })
        .await
        .map_err(|err| Error::internal(anyhow::anyhow!("hashing task failed: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_rule_is_named() {
        let err = Password::parse("password", "short").expect_err("weak");
        let reasons: Vec<&str> = err
            .violations()
            .iter()
            .map(|v| v.description.as_str())
            .collect();
        assert!(
            reasons.contains(&"must be at least 10 characters long"),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"must contain an uppercase letter"),
            "{reasons:?}"
        );
        assert!(reasons.contains(&"must contain a digit"), "{reasons:?}");
        assert!(
            !reasons.contains(&"must contain a lowercase letter"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_strong_password_passes() {
        assert!(Password::parse("password", "Correct horse 42").is_ok());
    }

    #[test]
    fn a_hash_verifies_only_its_password() {
        let hasher = PasswordHasherConfig::new(&HashingSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            ..HashingSettings::default()
        })
        .expect("params");
        let hash = hasher.hash("Correct horse 42").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify("Correct horse 42", &hash));
        assert!(!hasher.verify("Correct horse 43", &hash));
    }
}
