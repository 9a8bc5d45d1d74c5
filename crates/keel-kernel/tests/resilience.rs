//! A service when its infrastructure fails: readiness means "can serve requests" (the database
//! reachable and migrated), so a broker outage leaves it ready and writing to its outbox; with
//! the database down, requests fail fast with UNAVAILABLE and a retry delay, and readiness
//! returns soon after the database does.
//!
//! The broker and the database that are stopped here are private to the test (a `nats-server`
//! and a Postgres cluster of their own, on their own ports); the shared local stack is never
//! touched.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use keel_kernel::app::{Platform, Running};
use keel_kernel::config::{Config, DatabaseConfig, NoSettings};
use keel_kernel::error::ErrorCode;
use keel_kernel::metrics::Metrics;
use keel_kernel::outbox::NewEvent;
use keel_kernel::server::GrpcServer;
use keel_kernel::{db, ids::TenantId};
use keel_proto::common::v1::WhoAmIRequest;
use keel_testkit::stack::{TestDatabase, TestNats, config, nats_config};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

async fn serve(config: Config<NoSettings>) -> (Running, String) {
    let platform = Platform::start(config, &db::no_migrations())
        .await
        .expect("the platform starts");
    let server = GrpcServer::new(
        "resilience-test",
        &platform.config.grpc,
        std::sync::Arc::new(Metrics::new("resilience-test")),
    )
    .allow_unauthenticated();
    let running = platform.serve(server).await.expect("serve");
    let admin = format!("http://{}", running.admin_addr);
    (running, admin)
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(err) => (0, err.to_string()),
    }
}

/// Poll `url` until it answers `want`; returns how long that took.
async fn wait_for_status(url: &str, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = get(url).await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{url} still {status} ({body}) after {limit:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One write as every handler makes it: a row of the service's and its outbox event, committed
/// together.
async fn write_with_event(pool: &sqlx::PgPool, platform_outbox: &keel_kernel::outbox::Outbox) {
    let tenant = TenantId::new();
    let mut tx = db::tenant_tx(pool, tenant).await.expect("begin");
    let event = NewEvent::new("resilience.probe.written", tenant, &WhoAmIRequest {})
        .expect("a valid event")
        .tenant(tenant);
    platform_outbox
        .enqueue(&mut tx, event)
        .await
        .expect("the event is queued in the outbox");
    tx.commit().await.expect("commit");
}

// ---------------------------------------------------------------------------------------------
// The broker away

#[tokio::test]
async fn with_the_broker_unreachable_a_service_is_ready_and_its_writes_succeed() {
    let database = TestDatabase::create().await;
    let db_config = database.provision("resilience").await;
    // A port nothing listens on: the broker is down from the start.
    let nats = nats_config(&format!("nats://127.0.0.1:{}", free_port()));
    let (running, admin) = serve(config("resilience-test", db_config.clone(), nats)).await;

    let (status, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(status, 200, "a broker outage is not unreadiness: {body}");

    let pool = db::connect("resilience-test", &db_config, Duration::from_secs(5))
        .await
        .expect("pool");
    write_with_event(&pool, &keel_kernel::outbox::Outbox::new("resilience-test")).await;

    // The outage shows in the metrics instead: disconnected, and an event waiting.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = get(&format!("{admin}/metrics")).await;
        let disconnected = metrics.contains(r#"keel_nats_connected{service="resilience-test"} 0"#);
        let waiting = metrics
            .lines()
            .find(|line| line.starts_with("keel_outbox_oldest_unpublished_age_seconds"))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .is_some_and(|age| age > 0.0);
        if disconnected && waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no nats_connected 0 / outbox age > 0 in:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&format!("{admin}/readyz")).await.0, 200);
    running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn the_outbox_age_falls_back_to_zero_once_the_broker_returns() {
    let database = TestDatabase::create().await;
    let db_config = database.provision("resilience").await;
    let mut broker = TestNats::start().await;
    broker.stop().await;
    let (running, admin) = serve(config(
        "resilience-test",
        db_config.clone(),
        nats_config(&broker.url()),
    ))
    .await;
    let pool = db::connect("resilience-test", &db_config, Duration::from_secs(5))
        .await
        .expect("pool");
    write_with_event(&pool, &keel_kernel::outbox::Outbox::new("resilience-test")).await;
    assert_eq!(get(&format!("{admin}/readyz")).await.0, 200);

    broker.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = get(&format!("{admin}/metrics")).await;
        if metrics.contains(r#"keel_nats_connected{service="resilience-test"} 1"#)
            && metrics.contains(
                r#"keel_outbox_oldest_unpublished_age_seconds{service="resilience-test"} 0.0"#,
            )
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog never drained:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(unpublished, 0, "the relay published the queued event");
    running.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_schema_behind_the_binary_is_not_ready() {
    let database = TestDatabase::create().await;
    let mut db_config = database.provision("resilience").await;
    // Nobody migrates: the migration Job has not run yet.
    db_config.migrate = false;
    let admin_pool = database.admin_pool().await;
    sqlx::query(
        "CREATE TABLE resilience._sqlx_migrations (version bigint PRIMARY KEY, description text \
         NOT NULL, installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, \
         checksum bytea NOT NULL, execution_time bigint NOT NULL)",
    )
    .execute(&admin_pool)
    .await
    .expect("an empty migrations table");
    let service_pool = db::connect("resilience-test", &db_config, Duration::from_secs(5))
        .await
        .expect("pool");
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&service_pool)
        .await
        .expect("the service role");
    sqlx::query(&format!(
        "GRANT SELECT ON resilience._sqlx_migrations TO {role}"
    ))
    .execute(&admin_pool)
    .await
    .expect("grant");
    let broker = TestNats::start().await;
    let (running, admin) = serve(config(
        "resilience-test",
        db_config,
        nats_config(&broker.url()),
    ))
    .await;

    let (status, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("migrations not applied"), "{body}");
    running.stop().await.expect("a clean stop");
}

// ---------------------------------------------------------------------------------------------
// The database away

/// A Postgres cluster of the test's own (initdb into a temporary directory, its own port), so it
/// can be stopped and started. As root, it runs as the `postgres` (or `keel`) system user, as
/// scripts/stack.sh does, since postgres refuses to run as root.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    os_user: Option<String>,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let dir = std::env::temp_dir().join(format!(
            "keel-pg-{}",
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..12)
                .unwrap_or("x")
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let os_user = is_root().then(|| {
            ["postgres", "keel"]
                .into_iter()
                .find(|user| {
                    Command::new("id")
                        .arg(user)
                        .output()
                        .is_ok_and(|out| out.status.success())
                })
                .expect("a postgres or keel system user (bash scripts/stack.sh up creates one)")
                .to_owned()
        });
        if let Some(user) = &os_user {
            run("chown", &[user.as_str(), dir.to_str().expect("utf-8 path")]);
        }
        let cluster = PrivatePostgres {
            port: free_port(),
            dir,
            os_user,
        };
        let data = cluster.data();
        cluster.as_pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "keel",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.pg_start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn url(&self) -> String {
        format!("postgres://keel@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.to_string_lossy()
        );
        let log = self.dir.join("postgres.log").to_string_lossy().into_owned();
        self.as_pg(
            "pg_ctl",
            &[
                "start",
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-s",
            ],
        );
    }

    /// Stop at once, as a crash or a failover does: clients' connections just break.
    fn pg_stop(&self) {
        self.as_pg(
            "pg_ctl",
            &["stop", "-D", &self.data(), "-m", "immediate", "-w", "-s"],
        );
    }

    fn as_pg(&self, program: &str, args: &[&str]) {
        let binary = pg_binary(program);
        match &self.os_user {
            Some(user) => {
                let mut all = vec!["-u", user.as_str(), "--", binary.as_str()];
                all.extend_from_slice(args);
                run("runuser", &all);
            }
            None => run(&binary, args),
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let binary = pg_binary("pg_ctl");
        let data = self.data();
        let args = ["stop", "-D", data.as_str(), "-m", "immediate", "-s"];
        let _ = match &self.os_user {
            Some(user) => Command::new("runuser")
                .args(["-u", user.as_str(), "--", binary.as_str()])
                .args(args)
                .output(),
            None => Command::new(&binary).args(args).output(),
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `initdb`/`pg_ctl` from PATH, else from the newest /usr/lib/postgresql/<version>/bin.
fn pg_binary(program: &str) -> String {
    let on_path = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if let Some(path) = on_path.filter(|p| !p.is_empty()) {
        return path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .last()
        .map(|v| v.join("bin").join(program).to_string_lossy().into_owned())
        .unwrap_or_else(|| {
            panic!("no {program}: install postgresql (bash scripts/stack.sh install)")
        })
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn with_the_database_down_requests_fail_fast_and_readiness_returns_with_it() {
    let postgres = std::sync::Arc::new(
        tokio::task::spawn_blocking(PrivatePostgres::start)
            .await
            .expect("no panic"),
    );
    let admin_pool = sqlx::PgPool::connect(&postgres.url())
        .await
        .expect("admin pool");
    db::provision(&admin_pool, "resilience", "resilience", "resilience-pw")
        .await
        .expect("provision");
    admin_pool.close().await;
    let db_config = DatabaseConfig {
        url: format!(
            "postgres://resilience:resilience-pw@127.0.0.1:{}/postgres",
            postgres.port
        )
        .into(),
        schema: "resilience".into(),
        max_connections: 4,
        acquire_timeout_ms: 500,
        migrate: true,
    };
    let broker = TestNats::start().await;
    let (running, admin) = serve(config(
        "resilience-test",
        db_config.clone(),
        nats_config(&broker.url()),
    ))
    .await;
    let readyz = format!("{admin}/readyz");
    assert_eq!(get(&readyz).await.0, 200);
    let pool = db::connect("resilience-test", &db_config, Duration::from_secs(5))
        .await
        .expect("pool");
    let outbox = keel_kernel::outbox::Outbox::new("resilience-test");
    write_with_event(&pool, &outbox).await;

    tokio::task::spawn_blocking({
        let postgres = postgres.clone();
        move || postgres.pg_stop()
    })
    .await
    .expect("no panic");

    // A request fails fast, as UNAVAILABLE with a retry delay, and never as INTERNAL.
    for _ in 0..3 {
        let started = Instant::now();
        let err = match db::tenant_tx(&pool, TenantId::new()).await {
            Ok(_) => panic!("a transaction began with the database down"),
            Err(err) => err,
        };
        let waited = started.elapsed();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{err:?}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)), "{err:?}");
        assert!(
            waited < Duration::from_secs(3),
            "the caller waited {waited:?}, more than the acquire timeout allows"
        );
    }
    wait_for_status(&readyz, 503, Duration::from_secs(10)).await;
    let (_, body) = get(&readyz).await;
    assert!(body.contains("postgres"), "{body}");
    assert_eq!(get(&format!("{admin}/healthz")).await.0, 200, "still alive");

    tokio::task::spawn_blocking({
        let postgres = postgres.clone();
        move || postgres.pg_start()
    })
    .await
    .expect("no panic");
    let back_after = wait_for_status(&readyz, 200, Duration::from_secs(15)).await;
    eprintln!("ready again {back_after:?} after the database returned");
    // Writes work again on the same pool; what was acknowledged before is still there.
    write_with_event(&pool, &outbox).await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(events, 2);
    running.stop().await.expect("a clean stop");
}
