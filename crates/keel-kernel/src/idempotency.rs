//! Idempotent requests (AIP-155 `request_id`, or the `Idempotency-Key` header the edge gateway
//! forwards): a retry of a create returns the first answer and has no second effect.
//!
//! The key, a hash of the request and the answer are stored in the transaction of the effect
//! (`idempotency_keys`, a kernel table in every service schema). Keys are scoped to the tenant
//! (or, for creates that have no tenant yet, the principal) and to the method, so one tenant
//! cannot replay another's answer, and one key means one thing per method:
//!
//! - same key, same request, the first committed: the stored answer ([`Claim::Replay`]);
//! - same key, another request: VALIDATION on the key's field (Stripe answers the same);
//! - same key while the first is still running: the second waits on the first's row lock and then
//!   replays its answer, or goes ahead if the first rolled back; one effect either way.
//!
//! Handlers that must not hold a transaction open for the whole request (an AI call streaming for
//! a minute) claim in a short transaction of their own, work, and then [`IdempotencyKey::complete`]
//! or [`IdempotencyKey::release`]; a retry arriving in between gets ABORTED ("still in progress").

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::error::Error;
use crate::grpc::RequestMeta;
use crate::ids::TenantId;

/// The metadata the edge gateway forwards the `Idempotency-Key` header as.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Keys of at most this many characters are accepted (Stripe's limit).
const MAX_KEY_LEN: usize = 255;

/// Whose keys a key is among.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant(TenantId),
    /// The calling principal (a user id, `apikey:<id>`), for creates that precede a tenant.
    Principal(String),
}

/// A validated idempotency key for one request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    scope: String,
    tenant: Option<TenantId>,
    method: &'static str,
    key: String,
    field: &'static str,
    request_hash: Vec<u8>,
}

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim<R> {
    /// First use: do the work and `complete` the key before committing.
    New,
    /// An earlier request with this key and body committed this answer.
    Replay(R),
}

impl IdempotencyKey {
    /// The request's key, or None when it carries none. `explicit` is the request's own
    /// `request_id` field; when empty, the `Idempotency-Key` header is used. `method` names the
    /// operation (`billing.CreateSubscription`); the request is hashed to recognise a different
    /// body under the same key.
    pub fn from_request(
        method: &'static str,
        scope: Scope,
        explicit: &str,
        meta: &RequestMeta,
        request: &impl Message,
    ) -> Result<Option<IdempotencyKey>, Error> {
        let (field, key) = if explicit.is_empty() {
            match &meta.idempotency_key {
                Some(key) => ("Idempotency-Key", key.as_str()),
                None => return Ok(None),
            }
        } else {
            ("request_id", explicit)
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                field,
                format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters without spaces"),
            ));
        }
        let (scope, tenant) = match scope {
            Scope::Tenant(tenant) => (format!("tenant:{tenant}"), Some(tenant)),
            Scope::Principal(principal) => (format!("principal:{principal}"), None),
        };
        Ok(Some(IdempotencyKey {
            scope,
            tenant,
            method,
            key: key.to_owned(),
            field,
            request_hash: Sha256::digest(request.encode_to_vec()).to_vec(),
        }))
    }

    /// Claim the key in the caller's transaction (a `&mut TenantTx` for tenant-scoped keys).
    pub async fn claim<R: Message + Default>(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Claim<R>, Error> {
        // A concurrent claim of the same key blocks here until the first transaction ends.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, method, key, tenant_id, request_hash) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&self.scope)
        .bind(self.method)
        .bind(&self.key)
        .bind(self.tenant.map(|t| t.as_uuid()))
        .bind(&self.request_hash)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let stored: Option<(Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_keys \
              WHERE scope = $1 AND method = $2 AND key = $3",
        )
        .bind(&self.scope)
        .bind(self.method)
        .bind(&self.key)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((hash, response)) = stored else {
            // Released between our insert and our read: the caller may simply retry.
            return Err(Error::aborted(
                "a request with this idempotency key was just abandoned; retry",
            ));
        };
        if hash != self.request_hash {
            return Err(Error::invalid(
                self.field,
                "was already used with a different request",
            ));
        }
        match response {
            Some(bytes) => R::decode(bytes.as_slice())
                .map(Claim::Replay)
                .map_err(|err| Error::internal(anyhow::anyhow!("stored answer: {err}"))),
            None => Err(Error::aborted(
                "a request with this idempotency key is still in progress; retry later",
            )),
        }
    }

    /// Store the answer, in the transaction of the effect.
    pub async fn complete(
        &self,
        conn: &mut PgConnection,
        response: &impl Message,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE idempotency_keys SET response = $4 WHERE scope = $1 AND method = $2 AND key = $3",
        )
        .bind(&self.scope)
        .bind(self.method)
        .bind(&self.key)
        .bind(response.encode_to_vec())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Forget a claim whose work failed, so a retry can do it.
    pub async fn release(&self, conn: &mut PgConnection) -> Result<(), Error> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND method = $2 AND key = $3 \
               AND response IS NULL",
        )
        .bind(&self.scope)
        .bind(self.method)
        .bind(&self.key)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Forget `method`'s keys stored before `stored_before` (a service's retention job: keys must
/// outlive any client's retries, e.g. 24 h, and no longer). How many went. Run in a transaction
/// without a tenant: principal-scoped keys carry none, and the policy admits them there.
pub async fn purge(
    conn: &mut PgConnection,
    method: &str,
    stored_before: chrono::DateTime<chrono::Utc>,
) -> Result<u64, Error> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE method = $1 AND created_at < $2")
        .bind(method)
        .bind(stored_before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
