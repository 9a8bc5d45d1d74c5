//! The real infrastructure a test runs on: a fresh Postgres database per test (on the local
//! cluster `make test` starts), and, where a test needs to stop and restart the broker, a private
//! `nats-server` with JetStream of its own.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use keel_kernel::config::{Config, DatabaseConfig, NatsConfig, NoSettings};
use sqlx::{Connection, Executor, PgConnection};

/// The superuser URL of the local test cluster.
pub fn admin_url() -> String {
    std::env::var("KEEL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://keel@127.0.0.1:55432/postgres".into())
}

/// The shared NATS server of the local stack (tests that never stop the broker may use it).
pub fn shared_nats_url() -> String {
    std::env::var("KEEL_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:54222".into())
}

/// A connected client of the NATS server at `url`, authenticated as the URL's user if it names
/// one (the local stack's URL names `admin`). The kernel's client connects in the background;
/// this waits until it has.
pub async fn connect_nats(url: &str) -> async_nats::Client {
    let client = keel_kernel::nats::connect("keel-testkit", &nats_config(url))
        .await
        .unwrap_or_else(|err| panic!("cannot connect to NATS at {url}: {err}"));
    for _ in 0..100 {
        if client.connection_state() == async_nats::connection::State::Connected {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not connected to NATS at {url} within 5 s (bash scripts/stack.sh up)");
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A database of its own for one test. Left behind after the test (the dev cluster is disposable
/// and `make test` drops old test databases first), so a failing test's data can be inspected.
pub struct TestDatabase {
    pub name: String,
    id: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let id = short_id();
        let name = format!("test_{id}");
        let mut conn = PgConnection::connect(&admin_url()).await.unwrap_or_else(|err| {
            panic!("cannot reach the test Postgres at {}: {err}. Run `make test` (or `bash scripts/stack.sh up`).", admin_url())
        });
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        TestDatabase { name, id }
    }

    /// Superuser URL of this database (superusers bypass RLS: for setup and assertions only).
    pub fn admin_url(&self) -> String {
        with_database(&admin_url(), &self.name)
    }

    /// A superuser pool on this database.
    pub async fn admin_pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.admin_url())
            .await
            .expect("admin pool")
    }

    /// Provision `schema` with a role of its own (no BYPASSRLS), exactly as a service is provisioned,
    /// and return the service's database config.
    pub async fn provision(&self, schema: &str) -> DatabaseConfig {
        let role = format!("t{}_{schema}", self.id);
        let password = short_id();
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin_url())
            .await
            .expect("admin pool");
        keel_kernel::db::provision(&admin, schema, &role, &password)
            .await
            .expect("provision schema and role");
        admin.close().await;
        let url = with_credentials(&with_database(&admin_url(), &self.name), &role, &password);
        database_config(url, schema)
    }
}

fn database_config(url: String, schema: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: url.into(),
        schema: schema.to_owned(),
        max_connections: 8,
        acquire_timeout_ms: 5_000,
        migrate: true,
    }
}

/// Replace the database (path) of a Postgres URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    match query {
        Some(query) => format!("{prefix}/{database}?{query}"),
        None => format!("{prefix}/{database}"),
    }
}

/// Replace the user (and set a password) of a Postgres URL.
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

/// The local stack's NATS users (one per service), the file `make run`'s broker loads too.
pub const NATS_ACCOUNTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/nats/accounts.conf"
);

/// A private JetStream server with its own port and store, killed when dropped.
pub struct TestNats {
    pub port: u16,
    store: PathBuf,
    /// Started with the per-service users of [`NATS_ACCOUNTS`] (see [`TestNats::start_with_accounts`]).
    accounts: bool,
    child: Option<tokio::process::Child>,
}

impl TestNats {
    /// A broker without authentication: anyone may do anything.
    pub async fn start() -> TestNats {
        TestNats::launch(false).await
    }

    /// A broker with the local stack's per-service users: [`TestNats::url`] is the admin's,
    /// [`TestNats::url_as`] a service's.
    pub async fn start_with_accounts() -> TestNats {
        TestNats::launch(true).await
    }

    async fn launch(accounts: bool) -> TestNats {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("keel-nats-{}", short_id()));
        std::fs::create_dir_all(&store).expect("nats store dir");
        let mut nats = TestNats {
            port,
            store,
            accounts,
            child: None,
        };
        nats.spawn().await;
        nats
    }

    /// The URL to connect with: as `admin` when the broker has accounts.
    pub fn url(&self) -> String {
        if self.accounts {
            self.url_as("admin")
        } else {
            format!("nats://127.0.0.1:{}", self.port)
        }
    }

    /// The URL of `user` with its local password (`<user>-dev`, as in config/nats/accounts.conf).
    pub fn url_as(&self, user: &str) -> String {
        format!("nats://{user}:{user}-dev@127.0.0.1:{}", self.port)
    }

    /// Stop the server (SIGKILL: the harshest way a broker goes away).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Start it again on the same port with the same store: streams and consumers survive.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
        let mut command = tokio::process::Command::new(binary);
        if self.accounts {
            command.arg("-c").arg(NATS_ACCOUNTS);
        }
        let child = command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {binary}: {err}. Run `bash scripts/stack.sh install`.")
            });
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on port {}", self.port);
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// NATS settings for tests: the default stream and prefix (each test has its own server).
pub fn nats_config(url: &str) -> NatsConfig {
    NatsConfig {
        url: url.to_owned(),
        stream: "EVENTS".into(),
        subject_prefix: "events".into(),
        duplicate_window_secs: 900,
        max_age_days: 1,
        replicas: 1,
    }
}

/// A complete kernel config for `service` against the given database and broker, with fast
/// polling and retries so tests do not wait on production-sized timers.
pub fn config(service: &str, database: DatabaseConfig, nats: NatsConfig) -> Config<NoSettings> {
    let yaml = format!(
        "service: {service}\n\
         database: {{ url: 'postgres://placeholder@localhost/x', schema: {schema} }}\n\
         nats: {{ url: 'nats://placeholder:1' }}\n\
         auth: {{ issuer: keel-test, audience: keel }}\n\
         telemetry: {{ log_level: warn, log_format: pretty }}\n\
         outbox: {{ poll_interval_ms: 200, max_backoff_ms: 500 }}\n\
         consumer: {{ max_deliver: 3, backoff_ms: [50, 100], ack_wait_ms: 2000 }}\n\
         jobs: {{ poll_interval_ms: 200, max_attempts: 3 }}\n",
        schema = database.schema
    );
    let mut config =
        Config::<NoSettings>::from_yaml(&yaml, std::path::Path::new("testkit"), std::iter::empty())
            .expect("testkit config is valid");
    config.database = database;
    config.nats = nats;
    config
}

/// [`config`] with a service's own settings in `app`.
pub fn config_with<S>(
    service: &str,
    database: DatabaseConfig,
    nats: NatsConfig,
    app: S,
) -> Config<S> {
    let base = config(service, database, nats);
    Config {
        service: base.service,
        grpc: base.grpc,
        admin: base.admin,
        database: base.database,
        nats: base.nats,
        auth: base.auth,
        telemetry: base.telemetry,
        outbox: base.outbox,
        consumer: base.consumer,
        jobs: base.jobs,
        app,
    }
}
