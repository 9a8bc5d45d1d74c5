//! Postgres: the service's pool (its own role, its own schema), migrations, provisioning, and the
//! tenant transaction helper that row-level security hangs on.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgConnection, PgPool, Postgres, Transaction};

use crate::config::{DatabaseConfig, is_sql_identifier};
use crate::error::Error;
use crate::ids::{TenantId, UserId};

/// A database transaction. Every handler's writes, and its outbox rows, go through one.
pub type Tx = Transaction<'static, Postgres>;

/// The kernel's own migrations (outbox, inbox, dead letters, RLS helpers), versions 1..=999.
static KERNEL_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Open the service's pool. Every connection's `search_path` is the service schema, so its SQL
/// names tables without a schema and cannot reach another service's by accident. Retries for
/// `startup_wait` so that a service started alongside its database waits instead of crashing.
pub async fn connect(
    service: &str,
    config: &DatabaseConfig,
    startup_wait: Duration,
) -> Result<PgPool, Error> {
    let options = connect_options(service, config)?;
    let pool_options = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms));
    let deadline = tokio::time::Instant::now() + startup_wait;
    let mut delay = Duration::from_millis(100);
    loop {
        match pool_options.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(err) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %err, "database not reachable yet, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(err) => return Err(Error::from(err)),
        }
    }
}

/// Connection options for the service's role with `search_path` pinned to its schema.
pub fn connect_options(service: &str, config: &DatabaseConfig) -> Result<PgConnectOptions, Error> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())
        .map_err(|_| Error::internal(anyhow::anyhow!("database.url is not a valid Postgres URL")))?
        .application_name(service)
        .options([("search_path", config.schema.as_str())])
        // Statement logging would put tenant data in logs at INFO; slow statements still warn.
        .log_statements(log::LevelFilter::Debug)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_millis(500));
    Ok(options)
}

/// Apply the kernel's migrations and then the service's, as one ordered set in the service schema.
/// Service migrations use timestamp versions (`YYYYMMDDHHMMSS_name.sql`), above the kernel's range.
pub async fn migrate(pool: &PgPool, service_migrations: &Migrator) -> Result<(), Error> {
    let mut migrations: Vec<Migration> = KERNEL_MIGRATIONS.migrations.to_vec();
    if let Some(clash) = service_migrations
        .migrations
        .iter()
        .find(|m| m.version < 1000)
    {
        return Err(Error::internal(anyhow::anyhow!(
            "service migration version {} is in the kernel's reserved range (< 1000)",
            clash.version
        )));
    }
    migrations.extend(service_migrations.migrations.iter().cloned());
    migrations.sort_by_key(|m| m.version);
    let combined = Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    combined
        .run(pool)
        .await
        .map_err(|err| Error::internal(anyhow::anyhow!("migration failed: {err}")))
}

/// The newest migration version a service at this build expects applied: the highest of the
/// kernel's and the service's. Readiness compares it with what the database says.
pub fn expected_migration_version(service_migrations: &Migrator) -> i64 {
    KERNEL_MIGRATIONS
        .migrations
        .iter()
        .chain(service_migrations.migrations.iter())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// The newest migration applied successfully to the service schema (0 when none is).
pub async fn applied_migration_version(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(version.unwrap_or(0))
}

/// A migrator with no migrations, for services that have only the kernel's tables.
pub fn no_migrations() -> Migrator {
    Migrator {
        migrations: Cow::Borrowed(&[]),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// A transaction scoped to one tenant: `SET LOCAL app.current_tenant` has run, so every tenant
/// table's RLS policy admits that tenant's rows and no others. It carries its tenant, so a
/// repository function takes `&mut TenantTx` alone and cannot be handed a mismatched tenant id.
///
/// It dereferences to the connection, so queries run with `.execute(&mut **tx)` as on any
/// transaction. The setting ends with the transaction, so a pooled connection never carries one
/// tenant into another's request.
pub struct TenantTx {
    tx: Tx,
    tenant: TenantId,
}

impl TenantTx {
    /// The tenant every statement of this transaction is scoped to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub async fn commit(self) -> Result<(), Error> {
        Ok(self.tx.commit().await?)
    }

    /// Undo everything (dropping the transaction does the same, without waiting).
    pub async fn rollback(self) -> Result<(), Error> {
        Ok(self.tx.rollback().await?)
    }

    /// Scope an open transaction to `tenant` (a consumer's, once it has read the event).
    pub async fn scope(mut tx: Tx, tenant: TenantId) -> Result<TenantTx, Error> {
        set_tenant(&mut tx, tenant).await?;
        Ok(TenantTx { tx, tenant })
    }

    /// The plain transaction, still scoped to the tenant until it ends.
    pub fn into_inner(self) -> Tx {
        self.tx
    }
}

impl std::ops::Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// Begin a transaction scoped to one tenant (see [`TenantTx`]). Taking a `TenantId` (not an
/// option, not a string) is the point: this cannot be called without one.
pub async fn tenant_tx(pool: &PgPool, tenant: TenantId) -> Result<TenantTx, Error> {
    TenantTx::scope(pool.begin().await?, tenant).await
}

/// `SET LOCAL app.current_tenant` on an open transaction.
async fn set_tenant(tx: &mut Tx, tenant: TenantId) -> Result<(), Error> {
    sqlx::query("SELECT set_config('app.current_tenant', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Begin a transaction scoped to one user across tenants (`SET LOCAL app.current_user`), for the
/// few tables whose policy also admits `user_id = current_user_id()` (a user's own memberships).
/// Plain tenant policies still return nothing through it.
pub async fn user_tx(pool: &PgPool, user: UserId) -> Result<Tx, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.current_user', $1, true)")
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Begin a transaction with no tenant: for a service's global tables (users, the tenant registry).
/// Tenant tables read through it return no rows at all, by policy.
pub async fn unscoped_tx(pool: &PgPool) -> Result<Tx, Error> {
    Ok(pool.begin().await?)
}

/// Create the service's role (LOGIN, no BYPASSRLS, no superuser), a `<role>_owner` role (NOLOGIN)
/// owning its schema, in which the service may create objects, and the schema, if missing. Run
/// with a privileged connection: by `make run`'s provisioning and by the test kit.
/// In Kubernetes the database operator owns roles; this is for local stacks.
pub async fn provision(
    admin: &PgPool,
    schema: &str,
    role: &str,
    password: &str,
) -> Result<(), Error> {
    for (key, name) in [("schema", schema), ("role", role)] {
        if !is_sql_identifier(name) {
            return Err(Error::invalid(key, "must be a lowercase SQL identifier"));
        }
    }
    // Identifiers were validated above; the password goes in as a quoted literal.
    let password_literal = password.replace('\'', "''");
    let mut conn = admin.acquire().await?;
    let statement = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
             CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '{password_literal}'; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$"
    );
    conn.execute(statement.as_str()).await?;
    // The schema belongs to `<role>_owner`, a role nobody logs in as, not to the service: a
    // schema's owner may drop anything in it, so owning it would let the service undo any
    // protection (an append-only table) that its migrations hand to the owner role.
    let owner = format!("{role}_owner");
    let statement = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') THEN \
             CREATE ROLE {owner} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$"
    );
    conn.execute(statement.as_str()).await?;
    conn.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}").as_str())
        .await?;
    // Schemas provisioned before the owner role existed are handed over too.
    conn.execute(format!("ALTER SCHEMA {schema} OWNER TO {owner}").as_str())
        .await?;
    conn.execute(format!("GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}").as_str())
        .await?;
    conn.execute(seal_function(schema, role, &owner).as_str())
        .await?;
    // A service reaches only its own schema: nothing in `public`, nothing in the others.
    conn.execute(format!("REVOKE ALL ON SCHEMA public FROM {role}").as_str())
        .await?;
    Ok(())
}

/// `<schema>.keel_seal_append_only(table)`: what a service's migration calls to give up its own
/// power over an append-only table. The table and its trigger functions pass to the owner role,
/// and the service keeps only SELECT and INSERT, so it can no longer alter, drop, truncate or
/// disable the triggers of what it created. The service cannot do that alone (it is not a member
/// of the owner role, on purpose), so the function runs as the provisioning role; it acts only on
/// tables of its schema that the service owns, so it can take rights away and never grant any.
fn seal_function(schema: &str, role: &str, owner: &str) -> String {
    format!(
        r#"CREATE OR REPLACE FUNCTION {schema}.keel_seal_append_only(target text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
    AS $seal$
DECLARE
    table_oid oid;
    guard regprocedure;
BEGIN
    SELECT c.oid INTO table_oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = '{schema}' AND c.relname = target AND c.relkind IN ('r', 'p')
       AND pg_get_userbyid(c.relowner) = '{role}';
    IF table_oid IS NULL THEN
        RAISE EXCEPTION 'no table %.% owned by {role}', '{schema}', target;
    END IF;
    FOR guard IN SELECT DISTINCT t.tgfoid::regprocedure FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                  WHERE t.tgrelid = table_oid AND NOT t.tgisinternal
                    AND pg_get_userbyid(p.proowner) = '{role}' LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO {owner}', guard);
    END LOOP;
    EXECUTE format('ALTER TABLE %I.%I OWNER TO {owner}', '{schema}', target);
    EXECUTE format('REVOKE ALL ON %I.%I FROM {role}', '{schema}', target);
    EXECUTE format('GRANT SELECT, INSERT ON %I.%I TO {role}', '{schema}', target);
END
$seal$;
REVOKE ALL ON FUNCTION {schema}.keel_seal_append_only(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {schema}.keel_seal_append_only(text) TO {role};"#
    )
}

/// A row of the convention check: a tenant table that breaks the rules, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConventionViolation {
    pub table: String,
    pub problem: String,
}

/// Check the tenant-table convention on every table of `schema` that has a `tenant_id` column:
/// NOT NULL, row-level security enabled and forced with a policy, primary key led by `tenant_id`.
/// Each service's tests call this, so a new table cannot skip the convention unnoticed.
pub async fn check_tenant_tables(
    pool: &PgPool,
    schema: &str,
) -> Result<Vec<ConventionViolation>, Error> {
    let rows: Vec<(String, bool, bool, bool, i64, Option<String>)> = sqlx::query_as(
        r#"
        SELECT c.relname::text,
               a.attnotnull,
               c.relrowsecurity,
               c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
               (SELECT pa.attname::text
                  FROM pg_index i
                  JOIN pg_attribute pa ON pa.attrelid = i.indrelid AND pa.attnum = i.indkey[0]
                 WHERE i.indrelid = c.oid AND i.indisprimary)
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
           -- The kernel's own tables: cross-tenant by design (outbox, inbox, dead letters, jobs)
           -- or policed by a policy of their own that also admits principal-scoped rows.
           AND c.relname NOT IN ('outbox', 'inbox', 'dead_letters', 'jobs', 'idempotency_keys')
         ORDER BY c.relname
        "#,
    )
    .bind(schema)
    .fetch_all(pool)
    .await?;
    let mut violations = Vec::new();
    for (table, not_null, rls, forced, policies, pk_first) in rows {
        let mut flag = |problem: &str| {
            violations.push(ConventionViolation {
                table: table.clone(),
                problem: problem.to_owned(),
            })
        };
        if !not_null {
            flag("tenant_id is nullable");
        }
        if !rls || !forced {
            flag("row-level security is not enabled and forced");
        }
        if policies == 0 {
            flag("no row-level security policy");
        }
        if pk_first.as_deref() != Some("tenant_id") {
            flag("primary key is not led by tenant_id");
        }
    }
    Ok(violations)
}
