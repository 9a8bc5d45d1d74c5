//! API keys: creating, listing and revoking a tenant's keys, and exchanging a key's secret for a
//! short-lived token (the gateway's call, on AuthService).

use std::str::FromStr;

use chrono::Utc;
use keel_kernel::UserId;
use keel_kernel::auth::any_matches;
use keel_kernel::db::{self, TenantTx};
use keel_kernel::grpc::paging::{self, PageSize, PageToken, TimeId};
use keel_kernel::grpc::{from_timestamp, timestamp};
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::{Caller, Error, Violations};
use keel_proto::identity::v1 as pb;

use super::access::Access;
use super::auth::Auth;
use super::convert;
use super::roles::{catalogue_permissions, require_all};
use super::sessions::grants_in;
use crate::domain::audit::{actions, targets};
use crate::domain::{ApiKey, ApiKeyId, AuditEntry, TenantState, permissions, secrets};
use crate::events::publish::{self, types};
use crate::repo::api_keys::{self, NewApiKey};
use crate::repo::{audit, tenancy};

/// The longest name a key may have.
const MAX_NAME: usize = 100;

impl Access {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_api_key(
        &self,
        caller: &Caller,
        request: pb::CreateApiKeyRequest,
    ) -> Result<pb::ApiKey, Error> {
        let ctx = &self.0;
        let tenant = caller.tenant_field("tenant_id", &request.tenant_id)?;
        caller.require(permissions::API_KEY_CREATE)?;
        let key = request
            .api_key
            .as_ref()
            .ok_or_else(|| Error::invalid("api_key", "is required"))?;
        let mut fields = Violations::default();
        let name = key.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            fields.add("api_key.name", "is required, at most 100 characters");
        }
        let scopes = fields.check(catalogue_permissions("api_key.scopes", &key.scopes));
        let expires_at = match &key.expire_time {
            Some(ts) => fields.check(from_timestamp("api_key.expire_time", ts)),
            None => None,
        };
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            fields.add("api_key.expire_time", "must be in the future");
        }
        fields.finish()?;
        let scopes = scopes.unwrap_or_default();
        // A key can never do more than its creator.
        require_all(caller, &scopes)?;

        let retry_key = IdempotencyKey::from_request(
            "identity.CreateApiKey",
            Scope::Tenant(tenant),
            "",
            &caller.meta,
            &request,
        )?;
        let id = ApiKeyId::new();
        let secret = secrets::new_api_key_secret(id);
        let prefix = secrets::api_key_prefix(id);
        let created_by = &caller.claims.sub;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        if let Some(retry_key) = &retry_key
            && let Claim::Replay(first) = retry_key.claim::<pb::ApiKey>(&mut tx).await?
        {
            // The same key as the first call, without its secret: secrets are stored only hashed.
            return Ok(first);
        }
        let created = api_keys::create(
            &mut tx,
            NewApiKey {
                id,
                name,
                prefix: &prefix,
                secret_hash: &secrets::hash(&secret),
                scopes: &scopes,
                expires_at,
                created_by,
            },
        )
        .await?;
        let actor = caller.actor();
        let payload = pb::ApiKeyCreated {
            key_id: id.to_string(),
            tenant_id: tenant.to_string(),
            name: created.name.clone(),
            prefix: prefix.clone(),
            scopes: scopes.clone(),
            expire_time: expires_at.map(timestamp),
            created_by: created_by.clone(),
        };
        let event = publish::tenant_event(
            types::API_KEY_CREATED,
            id,
            &payload,
            tenant,
            &caller.meta,
            &actor,
        )?;
        ctx.outbox.enqueue(&mut tx, event).await?;
        let entry = AuditEntry::by(caller, actions::API_KEY_CREATE, targets::API_KEY, id)
            .with("name", created.name.clone())
            .with("scopes", scopes.join(" "));
        audit::record_tenant(&mut tx, &entry).await?;
        if let Some(retry_key) = &retry_key {
            retry_key
                .complete(&mut tx, &convert::api_key(&created, None))
                .await?;
        }
        tx.commit().await?;
        Ok(convert::api_key(&created, Some(secret)))
    }

    pub(super) async fn list_api_keys(
        &self,
        caller: &Caller,
        request: pb::ListApiKeysRequest,
    ) -> Result<pb::ListApiKeysResponse, Error> {
        let tenant = caller.tenant_field("tenant_id", &request.tenant_id)?;
        caller.require(permissions::API_KEY_LIST)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = api_keys::list_live(&mut tx, after, size.fetch_limit()).await?;
        tx.commit().await?;
        let (page, next_page_token) = paging::split_page(rows, size, api_keys::cursor);
        Ok(pb::ListApiKeysResponse {
            api_keys: page.iter().map(|key| convert::api_key(key, None)).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn delete_api_key(
        &self,
        caller: &Caller,
        request: pb::DeleteApiKeyRequest,
    ) -> Result<(), Error> {
        let ctx = &self.0;
        let tenant = caller.tenant_field("tenant_id", &request.tenant_id)?;
        caller.require(permissions::API_KEY_DELETE)?;
        let id = ApiKeyId::parse_field("key_id", &request.key_id)?;
        let revoked_by = &caller.claims.sub;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let revoked = api_keys::revoke(&mut tx, id, revoked_by)
            .await?
            .ok_or_else(|| Error::not_found("API key", id))?;
        let actor = caller.actor();
        // Tokens exchanged for the key before now expire within one key-token lifetime.
        let tokens_expire_at = Utc::now() + chrono::Duration::seconds(ctx.tokens.api_key_ttl());
        let payload = pb::ApiKeyRevoked {
            key_id: id.to_string(),
            tenant_id: tenant.to_string(),
            revoked_by: revoked_by.clone(),
            tokens_expire_time: Some(timestamp(tokens_expire_at)),
        };
        let event = publish::tenant_event(
            types::API_KEY_REVOKED,
            id,
            &payload,
            tenant,
            &caller.meta,
            &actor,
        )?;
        ctx.outbox.enqueue(&mut tx, event).await?;
        let entry = AuditEntry::by(caller, actions::API_KEY_DELETE, targets::API_KEY, id)
            .with("name", revoked.name);
        audit::record_tenant(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Auth {
    /// Resolve an API key secret to its principal and mint its short-lived token. Every refusal
    /// is the same AUTHN error, so a caller learns nothing about which keys exist.
    #[tracing::instrument(skip_all)]
    pub(super) async fn exchange_api_key(
        &self,
        request: pb::ExchangeApiKeyRequest,
    ) -> Result<pb::ExchangeApiKeyResponse, Error> {
        let ctx = &self.0;
        let refused = || Error::unauthenticated("invalid API key");
        let secret = request.secret.trim();
        let id = secrets::api_key_id(secret).ok_or_else(refused)?;
        // The directory is global; the key itself is a row of its tenant.
        let mut tx = db::unscoped_tx(&ctx.db).await?;
        let tenant = api_keys::owner(&mut tx, id).await?.ok_or_else(refused)?;
        let mut tx = TenantTx::scope(tx, tenant).await?;
        if tenancy::tenant_state(&mut tx, tenant).await? != Some(TenantState::Active) {
            return Err(refused());
        }
        let key = api_keys::authenticate(&mut tx, id, &secrets::hash(secret))
            .await?
            .ok_or_else(refused)?;
        if !creator_still_holds_scopes(&mut tx, &key).await? {
            return Err(refused());
        }
        tx.commit().await?;
        let token = ctx.tokens.api_key_token(id, tenant, &key.scopes)?;
        Ok(pb::ExchangeApiKeyResponse {
            key_id: id.to_string(),
            tenant_id: tenant.to_string(),
            scopes: key.scopes,
            access_token: token.token,
            expires_in: token.expires_in as i32,
            key_expire_time: key.expires_at.map(timestamp),
        })
    }
}

/// How many keys a chain of keys creating keys may pass through before its user: deeper chains
/// are refused rather than followed.
const MAX_CREATOR_CHAIN: usize = 8;

/// Whether whoever created `key` could still create it now: a user still a member of the tenant
/// whose role covers every scope, or a key still live whose scopes cover them and whose own
/// creator passes the same test. A key must not outlive its creator's rights.
async fn creator_still_holds_scopes(tx: &mut TenantTx, key: &ApiKey) -> Result<bool, Error> {
    let covers = |granted: &[String]| key.scopes.iter().all(|s| any_matches(granted, s));
    let mut creator = key.created_by.clone();
    for _ in 0..MAX_CREATOR_CHAIN {
        if let Some(parent) = creator.strip_prefix("apikey:") {
            let Ok(parent) = ApiKeyId::from_str(parent) else {
                return Ok(false);
            };
            let Some(parent) = api_keys::live(tx, parent).await? else {
                return Ok(false);
            };
            if !covers(&parent.scopes) {
                return Ok(false);
            }
            creator = parent.created_by;
            continue;
        }
        let Ok(user) = UserId::from_str(&creator) else {
            return Ok(false);
        };
        return Ok(match grants_in(tx, user).await? {
            Some(grants) => covers(&grants.perms),
            None => false,
        });
    }
    Ok(false)
}
