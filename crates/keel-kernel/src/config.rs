//! Typed configuration: one YAML file per service, then environment overrides, then validation.
//!
//! `KEEL__DATABASE__URL=postgres://...` overrides `database.url`; every section and key can be
//! overridden this way (values are read as YAML scalars, so numbers and booleans work). Start-up
//! fails with an error naming the key at fault, and its line when the fault is in the file. The
//! same loader ([`parse_with_env`]) reads the edge gateway's file. Secrets are `SecretString`:
//! redacted in `Debug`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Environment variables with this prefix (then `__`-separated keys) override the file.
pub const ENV_PREFIX: &str = "KEEL";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A fault in the file itself, at its line. Shape and value errors keep serde_yaml's message,
    /// which also gives the column.
    #[error("{path} line {line}: {message}")]
    AtLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A fault in a file that has no line to point at (an empty document, say).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A bad value found once the file and the environment are merged (so no line), or by
    /// validation.
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Service-specific settings validate themselves after the kernel's sections have.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Start-up checks that read local files but need no network (identity's signing keys). Run
    /// by `--check-config` and at start through [`crate::cli::load_config`].
    fn preflight(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// For services with no settings of their own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl Validate for NoSettings {}

/// The whole configuration of one service: the kernel's sections plus the service's own `app`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config<S = NoSettings> {
    /// Service name: the log field, the metrics label, the error domain, the outbox source.
    pub service: String,
    #[serde(default)]
    pub grpc: GrpcConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub consumer: ConsumerConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    #[serde(default)]
    pub app: S,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// `127.0.0.1:0` picks a free port (tests); production sets a fixed one.
    pub listen: SocketAddr,
    pub request_timeout_ms: u64,
    /// Requests handled at once; above it a request waits for a slot (see `admission_max_wait_ms`).
    pub concurrency_limit: usize,
    /// How long a request may wait for a slot above `concurrency_limit` before it is refused with
    /// UNAVAILABLE and a retry delay (less when the caller's own deadline is nearer): a burst
    /// queues briefly instead of being refused.
    pub admission_max_wait_ms: u64,
    /// Requests waiting for a slot at most; more are refused at once, so the queue's memory and
    /// its wait stay bounded under sustained overload.
    pub admission_queue_limit: usize,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub shutdown_grace_ms: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            request_timeout_ms: 10_000,
            concurrency_limit: 512,
            admission_max_wait_ms: 2_000,
            admission_queue_limit: 4_096,
            shutdown_grace_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// A bearer secret an operator presents to list and replay dead letters (besides a platform
    /// admin's token). Unset: only platform-admin tokens are accepted. `/healthz`, `/readyz` and
    /// `/metrics` stay open for probes and scrapers. Set it from a secret
    /// (`KEEL__ADMIN__OPERATOR_TOKEN`), never in a committed file.
    #[serde(default)]
    pub operator_token: Option<SecretString>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            operator_token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL of the service's own role (no BYPASSRLS). Secret: it may hold a password.
    pub url: SecretString,
    /// The service's schema; it owns nothing else.
    pub schema: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (and for a connection attempt) before it
    /// fails with UNAVAILABLE. Short, so that with Postgres down requests fail fast with a retry
    /// delay instead of hanging until the caller's timeout.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// Run the service's migrations at start (the default for local runs; Kubernetes may use a Job).
    #[serde(default = "default_true")]
    pub migrate: bool,
}

fn default_max_connections() -> u32 {
    10
}
fn default_acquire_timeout_ms() -> u64 {
    1_000
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
    /// The one JetStream stream every service publishes to.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// First token of every event subject: `<prefix>.<context>.<aggregate>.<type>`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// JetStream de-duplication window; above the relay's longest retry horizon.
    #[serde(default = "default_duplicate_window_secs")]
    pub duplicate_window_secs: u64,
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u64,
    /// Stream replicas: 1 on a single server (2.9 refuses more), 3 on a production cluster.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

fn default_replicas() -> usize {
    1
}

fn default_stream() -> String {
    "EVENTS".into()
}
fn default_subject_prefix() -> String {
    "events".into()
}
fn default_duplicate_window_secs() -> u64 {
    15 * 60
}
fn default_max_age_days() -> u64 {
    7
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Where the identity service publishes its JWKS. Empty only for identity itself, which
    /// verifies with its own keys.
    #[serde(default)]
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    /// An unknown `kid` refetches the JWKS at most this often.
    #[serde(default = "default_jwks_refetch_secs")]
    pub jwks_min_refetch_secs: u64,
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
}

fn default_jwks_refetch_secs() -> u64 {
    30
}
fn default_leeway_secs() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive, e.g. `info,sqlx=warn`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// OTLP/gRPC collector endpoint; traces are exported only when set.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_level: "info".into(),
            log_format: LogFormat::Json,
            otlp_endpoint: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    pub batch_size: i64,
    /// Fallback poll; NOTIFY normally wakes the relay at once.
    pub poll_interval_ms: u64,
    /// Published rows are kept this long so they can be re-published after a broker loss.
    pub retention_hours: u64,
    pub max_backoff_ms: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            batch_size: 256,
            poll_interval_ms: 1_000,
            retention_hours: 24,
            max_backoff_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    pub max_deliver: i64,
    /// Redelivery delays; attempt n waits `backoff_ms[min(n, len-1)]`.
    pub backoff_ms: Vec<u64>,
    pub ack_wait_ms: u64,
    pub max_ack_pending: i64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_deliver: 5,
            backoff_ms: vec![200, 1_000, 5_000, 15_000],
            ack_wait_ms: 30_000,
            max_ack_pending: 1_000,
        }
    }
}

/// The durable job worker (`crate::jobs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// How often an idle worker looks for due jobs.
    pub poll_interval_ms: u64,
    /// A job failing this many times is given up (kept with its last error for an operator).
    pub max_attempts: i32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            poll_interval_ms: 1_000,
            max_attempts: 10,
        }
    }
}

impl<S: DeserializeOwned + Validate + Default> Config<S> {
    /// Load from `path`, apply `KEEL__*` overrides from the process environment, validate.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        Self::from_yaml(&text, path, std::env::vars())
    }

    /// Parse YAML text with the given environment; `origin` only names the source in errors.
    pub fn from_yaml(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let config: Config<S> = parse_with_env(text, origin, env)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.service.trim().is_empty() {
            return Err(ConfigError::invalid("service", "must not be empty"));
        }
        let db_url = self.database.url.expose_secret();
        if !(db_url.starts_with("postgres://") || db_url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid(
                "database.url",
                "must be a postgres:// URL",
            ));
        }
        if !is_sql_identifier(&self.database.schema) {
            return Err(ConfigError::invalid(
                "database.schema",
                "must be a lowercase SQL identifier ([a-z_][a-z0-9_]*)",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if !self.nats.url.starts_with("nats://") {
            return Err(ConfigError::invalid("nats.url", "must be a nats:// URL"));
        }
        if self.nats.subject_prefix.is_empty() || self.nats.subject_prefix.contains(['*', '>', ' '])
        {
            return Err(ConfigError::invalid(
                "nats.subject_prefix",
                "must be a plain subject token",
            ));
        }
        if self.auth.issuer.is_empty() {
            return Err(ConfigError::invalid("auth.issuer", "must not be empty"));
        }
        if self.auth.audience.is_empty() {
            return Err(ConfigError::invalid("auth.audience", "must not be empty"));
        }
        if self.grpc.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "grpc.request_timeout_ms",
                "must be positive",
            ));
        }
        if self.grpc.concurrency_limit == 0 {
            return Err(ConfigError::invalid(
                "grpc.concurrency_limit",
                "must be at least 1",
            ));
        }
        if self.database.acquire_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "database.acquire_timeout_ms",
                "must be positive",
            ));
        }
        if self.consumer.max_deliver < 1 {
            return Err(ConfigError::invalid(
                "consumer.max_deliver",
                "must be at least 1",
            ));
        }
        if self.jobs.max_attempts < 1 {
            return Err(ConfigError::invalid(
                "jobs.max_attempts",
                "must be at least 1",
            ));
        }
        if self.jobs.poll_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "jobs.poll_interval_ms",
                "must be positive",
            ));
        }
        if self.outbox.batch_size < 1 {
            return Err(ConfigError::invalid(
                "outbox.batch_size",
                "must be at least 1",
            ));
        }
        self.app.validate()
    }
}

/// Read a config file, naming it in the error.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parse YAML `text` (read from `origin`) into `T`, then let `KEEL__A__B=v` variables among
/// `env` override key `a.b`. Without overrides the text is deserialized directly, so a bad key or
/// value is reported at its line; with them, errors name the key (the value may not come from the
/// file at all).
pub fn parse_with_env<T: DeserializeOwned>(
    text: &str,
    origin: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let prefix = format!("{ENV_PREFIX}__");
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect();
    if overrides.is_empty() {
        return parse(text, origin);
    }
    // Errors in the file itself are still caught with their line first.
    let mut tree: serde_yaml::Value = parse(text, origin)?;
    // Deterministic order, so `A__B` and `A__B__C` conflicts always resolve the same way.
    overrides.sort();
    for (var, raw) in overrides {
        let keys: Vec<String> = var[prefix.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                message: "empty key segment".into(),
            });
        }
        let value: serde_yaml::Value = match serde_yaml::from_str(&raw) {
            Ok(serde_yaml::Value::Mapping(_)) | Ok(serde_yaml::Value::Sequence(_)) | Err(_) => {
                serde_yaml::Value::String(raw)
            }
            Ok(scalar) => scalar,
        };
        set_path(&mut tree, &keys, value).map_err(|message| ConfigError::Env { var, message })?;
    }
    serde_path_to_error::deserialize(tree)
        .map_err(|err| ConfigError::invalid(key_name(err.path()), err.into_inner().to_string()))
}

/// Parse YAML `text` (read from `origin`) into `T`, with no environment overrides (a file that
/// is not the main one, such as the gateway's route table). Errors carry the line and the key.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|err| {
        let key = key_name(err.path());
        let inner = err.into_inner();
        let message = if key == ROOT {
            inner.to_string()
        } else {
            format!("key `{key}`: {inner}")
        };
        match inner.location() {
            Some(at) => ConfigError::AtLine {
                path: origin.to_owned(),
                line: at.line(),
                message,
            },
            None => ConfigError::File {
                path: origin.to_owned(),
                message,
            },
        }
    })
}

const ROOT: &str = "(root)";

fn key_name(path: &serde_path_to_error::Path) -> String {
    let key = path.to_string();
    if key == "." { ROOT.into() } else { key }
}

fn set_path(
    tree: &mut serde_yaml::Value,
    keys: &[String],
    value: serde_yaml::Value,
) -> Result<(), String> {
    let mut node = tree;
    for (depth, key) in keys.iter().enumerate() {
        if node.is_null() {
            *node = serde_yaml::Value::Mapping(Default::default());
        }
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| format!("`{}` is not a section", keys[..depth].join(".")))?;
        let slot = map
            .entry(serde_yaml::Value::String(key.clone()))
            .or_insert(serde_yaml::Value::Null);
        if depth + 1 == keys.len() {
            *slot = value;
            return Ok(());
        }
        node = slot;
    }
    Ok(())
}

/// Where a YAML document came from, kept so that faults found after parsing (a reference to
/// something that does not exist) can still point at a line.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// An error at the first line mentioning `needle` (a name the file itself spelled).
    pub fn error_at(&self, needle: &str, message: impl Into<String>) -> ConfigError {
        let message = message.into();
        match locate(&self.text, needle) {
            Some(line) => ConfigError::AtLine {
                path: self.path.clone(),
                line,
                message,
            },
            None => ConfigError::File {
                path: self.path.clone(),
                message,
            },
        }
    }
}

/// The 1-based line of the first occurrence of `needle` as a whole YAML token.
fn locate(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let code = line.split(" #").next().unwrap_or(line);
            code.match_indices(needle).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                let after = code[at + needle.len()..].chars().next();
                let boundary = |c: Option<char>| {
                    c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'))
                };
                boundary(before) && boundary(after)
            })
        })
        .map(|index| index + 1)
}

pub(crate) fn is_sql_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// The config path from `--config <path>` or `KEEL_CONFIG`, else `config/<service>.yaml`.
pub fn path_from_args(service: &str) -> PathBuf {
    path_from(service, std::env::args().skip(1))
}

/// [`path_from_args`] over the given arguments (the program name left out).
pub fn path_from(service: &str, args: impl IntoIterator<Item = String>) -> PathBuf {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            if let Some(path) = args.next() {
                return PathBuf::from(path);
            }
        } else if let Some(path) = arg.strip_prefix("--config=") {
            return PathBuf::from(path);
        }
    }
    std::env::var_os("KEEL_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("config/{service}.yaml")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
service: demo
database: { url: "postgres://demo:pw@127.0.0.1:5432/keel", schema: demo }
nats: { url: "nats://127.0.0.1:4222" }
auth: { jwks_url: "http://127.0.0.1:1/jwks", issuer: keel, audience: keel }
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::<NoSettings>::from_yaml(text, Path::new("test.yaml"), env)
    }

    #[test]
    fn a_minimal_file_loads_with_defaults() {
        let config = load(BASE, &[]).expect("valid config");
        assert_eq!(config.database.max_connections, 10);
        assert_eq!(config.nats.stream, "EVENTS");
    }

    #[test]
    fn environment_overrides_nested_keys_with_typed_values() {
        let config = load(
            BASE,
            &[
                ("KEEL__DATABASE__MAX_CONNECTIONS", "42"),
                ("KEEL__GRPC__LISTEN", "0.0.0.0:50051"),
            ],
        )
        .expect("valid config");
        assert_eq!(config.database.max_connections, 42);
        assert_eq!(config.grpc.listen.port(), 50051);
    }

    #[test]
    fn a_wrongly_typed_value_names_its_key() {
        let err = load(BASE, &[("KEEL__DATABASE__MAX_CONNECTIONS", "lots")]).unwrap_err();
        assert!(
            err.to_string().contains("database.max_connections"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_names_itself() {
        let err = load(&format!("{BASE}\ntelemetry: {{ log_levle: debug }}\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("telemetry"), "{err}");
        assert!(err.to_string().contains("log_levle"), "{err}");
    }

    #[test]
    fn a_bad_value_in_the_file_is_reported_at_its_line() {
        let err = load(&format!("{BASE}grpc:\n  request_timeout_ms: soon\n"), &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::AtLine { line: 7, .. }), "{text}");
        assert!(text.contains("grpc.request_timeout_ms"), "{text}");
    }

    #[test]
    fn a_semantically_bad_value_names_its_key() {
        let err = load(BASE, &[("KEEL__NATS__URL", "http://nope")]).unwrap_err();
        assert!(err.to_string().contains("nats.url"), "{err}");
    }

    #[test]
    fn a_missing_section_names_itself() {
        let err = load("service: demo\n", &[]).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = load(BASE, &[]).expect("valid config");
        let shown = format!("{config:?}");
        assert!(!shown.contains("pw@"), "{shown}");
    }
}
