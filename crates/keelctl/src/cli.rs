//! The command line: global flags (where the services are, the token, the output shape) and the
//! commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Failure, Outcome};

/// The services with an admin port, and where `make run` serves it (config/<service>.yaml).
/// The edge gateway is left out: it has no outbox, consumers or dead letters.
pub const ADMIN_PORTS: &[(&str, &str)] = &[
    ("identity", "http://127.0.0.1:9091"),
    ("tenancy", "http://127.0.0.1:9092"),
    ("billing", "http://127.0.0.1:9093"),
    ("delivery", "http://127.0.0.1:9094"),
    ("marketplace", "http://127.0.0.1:9095"),
    ("ai-gateway", "http://127.0.0.1:9096"),
    ("notifications", "http://127.0.0.1:9097"),
];

#[derive(Debug, Parser)]
#[command(
    name = "keelctl",
    version,
    about = "Operate a keel mesh: tenants, dead letters, signing keys, outbox and consumer lag, platform admins",
    after_help = "Exit status: 0 done, 1 failed, 2 bad usage, 3 token refused, 4 service unreachable."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// A platform admin's access token (`keelctl login`), or a service's `admin.operator_token`
    /// for the admin-port commands.
    #[arg(long, env = "KEELCTL_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Identity's gRPC address.
    #[arg(
        long,
        env = "KEELCTL_IDENTITY_GRPC",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub identity_grpc: String,
    /// Tenancy's gRPC address.
    #[arg(
        long,
        env = "KEELCTL_TENANCY_GRPC",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    pub tenancy_grpc: String,
    /// A service's admin port, as SERVICE=URL (repeatable; e.g. `billing=http://billing:9090`).
    /// Names not in the built-in list add a service (e.g. `notifications=http://127.0.0.1:9097`).
    #[arg(
        long = "admin",
        value_name = "SERVICE=URL",
        env = "KEELCTL_ADMIN",
        value_delimiter = ',',
        global = true
    )]
    pub admin: Vec<String>,
}

impl Global {
    /// The token, or an error saying how to give one.
    pub fn token(&self) -> Outcome<&str> {
        self.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
            Failure::Refused(
                "this command needs a token: pass --token or set KEELCTL_TOKEN (a platform admin's token from `keelctl login`, or the operator token for admin-port commands)".into(),
            )
        })
    }

    /// Every service's admin address: the built-in defaults, overridden or extended by `--admin`.
    pub fn admin_ports(&self) -> Outcome<Vec<(String, String)>> {
        let mut ports: Vec<(String, String)> = ADMIN_PORTS
            .iter()
            .map(|(s, u)| (s.to_string(), u.to_string()))
            .collect();
        for entry in &self.admin {
            let (service, url) = entry
                .split_once('=')
                .ok_or_else(|| Failure::failed(format!("--admin {entry}: expected SERVICE=URL")))?;
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(Failure::failed(format!(
                    "--admin {entry}: the URL must start with http://"
                )));
            }
            match ports.iter_mut().find(|(s, _)| s == service) {
                Some(slot) => slot.1 = url.to_owned(),
                None => ports.push((service.to_owned(), url.to_owned())),
            }
        }
        Ok(ports)
    }

    /// The admin address of `service`, or of every service when `service` is none.
    pub fn admin_targets(&self, service: Option<&str>) -> Outcome<Vec<(String, String)>> {
        let ports = self.admin_ports()?;
        match service {
            None => Ok(ports),
            Some(name) => ports
                .into_iter()
                .find(|(s, _)| s == name)
                .map(|found| vec![found])
                .ok_or_else(|| {
                    Failure::failed(format!(
                        "unknown service `{name}`: known are {}; add one with --admin {name}=URL",
                        self.admin_ports()
                            .unwrap_or_default()
                            .iter()
                            .map(|(s, _)| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to identity and print the access token (for KEELCTL_TOKEN). The password is read
    /// from KEELCTL_PASSWORD or the first line of standard input.
    Login(LoginArgs),
    /// List, inspect, approve, suspend and reactivate tenants (tenancy gRPC).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// List and replay events a consumer gave up on (each service's admin port).
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// The transactional outbox: events not yet published, and the age of the oldest.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Consumer lag and dead letters per consumer (from each service's /metrics).
    Lag(LagArgs),
    /// Identity's signing keys: list the published ones, make a new one for rotation.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Platform admins (identity's `app.platform_admins`).
    #[command(subcommand)]
    Admins(AdminsCommand),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[arg(long)]
    pub email: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateFilter {
    Pending,
    Active,
    Suspended,
    Deleted,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Every tenant (all pages), optionally only those in one state.
    List {
        #[arg(long, value_enum)]
        state: Option<StateFilter>,
    },
    /// One tenant.
    Get { tenant_id: String },
    /// Approve a tenant awaiting approval.
    Approve { tenant_id: String },
    /// Suspend a tenant: its data is kept, every tenant-scoped call is refused.
    Suspend {
        tenant_id: String,
        /// Why, for the audit log and the tenant's members.
        #[arg(long)]
        reason: String,
    },
    /// Put a suspended tenant back in service.
    Reactivate { tenant_id: String },
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Dead letters of one service, or of every service.
    List {
        /// Only this service (default: every service).
        #[arg(long, short)]
        service: Option<String>,
        /// Also those already replayed.
        #[arg(long)]
        include_replayed: bool,
    },
    /// Ask a service's consumer to run its handler again on dead letters.
    Replay {
        #[arg(long, short)]
        service: String,
        /// The dead letters to replay, by id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        /// Every dead letter of the service not yet replayed.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Unpublished events and the age of the oldest, per service.
    Status {
        #[arg(long, short)]
        service: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct LagArgs {
    #[arg(long, short)]
    pub service: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The keys identity publishes (its JWKS); the first is the one that signs.
    List,
    /// Make a new Ed25519 signing key file and print the configuration steps that rotate to it.
    Rotate {
        /// Where to write the new key (`<kid>.pem`, mode 0600).
        #[arg(long, default_value = ".dev/keys")]
        key_dir: PathBuf,
        /// The new key's id (default: `key-<UTC timestamp>`).
        #[arg(long)]
        kid: Option<String>,
        /// Identity's config file, to read the current keys from.
        #[arg(long, default_value = "config/identity.yaml")]
        identity_config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    /// The platform admins identity's config names.
    List {
        #[arg(long, default_value = "config/identity.yaml")]
        identity_config: PathBuf,
    },
    /// Make `email` a platform admin: prints (or, with --write, makes) the config change.
    Create {
        email: String,
        #[arg(long, default_value = "config/identity.yaml")]
        identity_config: PathBuf,
        /// Rewrite the config file's `platform_admins` line instead of only printing the change.
        #[arg(long)]
        write: bool,
    },
}
