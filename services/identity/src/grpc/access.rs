//! AccessService: a tenant's roles, API keys and audit log, the permission catalogue, and the API
//! key exchange the gateway uses. Every tenant-scoped call takes its tenant from the verified
//! token (the request's `tenant_id` only has to agree) and runs in that tenant's transaction.

use chrono::Utc;
use keel_kernel::auth::{Claims, roles as built_in_roles};
use keel_kernel::db;
use keel_kernel::{Error, TenantId};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::access_service_server::AccessService;
use tonic::{Request, Response, Status};

use super::context::{self, Meta};
use super::convert::{self, Fields};
use super::{State, paging};
use crate::domain::{ApiKeyId, RoleName, permissions, secrets};
use crate::events::publish;
use crate::repo::api_keys::{self, NewApiKey};
use crate::repo::audit::{self, AuditFilter};
use crate::repo::tenancy::TenantState;
use crate::repo::{self, roles, tenancy};

pub struct AccessApi {
    state: State,
}

impl AccessApi {
    pub fn new(state: State) -> Self {
        AccessApi { state }
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        respond!(self.state, list_roles(&self.state, &request))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, create_role(&self.state, &meta, &request))
    }

    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        respond!(self.state, list_permissions(&request))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, create_api_key(&self.state, &meta, &request))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        respond!(self.state, list_api_keys(&self.state, &request))
    }

    async fn delete_api_key(
        &self,
        request: Request<pb::DeleteApiKeyRequest>,
    ) -> Result<Response<()>, Status> {
        let meta = Meta::of(&request);
        respond!(self.state, delete_api_key(&self.state, &meta, &request))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        respond!(self.state, list_audit_events(&self.state, &request))
    }
}

/// The caller's claims and tenant, once it holds `permission` in it.
fn authorize<T>(
    request: &Request<T>,
    tenant_id: &str,
    permission: &str,
) -> Result<(Claims, TenantId), Error> {
    let claims = context::claims(request)?;
    let tenant = context::tenant_scope(&claims, tenant_id)?;
    claims.require(permission)?;
    Ok((claims, tenant))
}

async fn list_roles(
    state: &State,
    request: &Request<pb::ListRolesRequest>,
) -> Result<pb::ListRolesResponse, Error> {
    let body = request.get_ref();
    let (_, tenant) = authorize(request, &body.tenant_id, "identity.role.list")?;
    let mut tx = db::tenant_tx(&state.db, tenant).await?;
    let custom = roles::list(&mut tx, tenant).await?;
    tx.commit().await?;
    let built_in = built_in_roles::BUILT_IN.iter().map(|name| pb::Role {
        id: (*name).to_owned(),
        name: (*name).to_owned(),
        description: permissions::built_in_description(name).to_owned(),
        permissions: permissions::expand(&permissions::built_in(name).unwrap_or_default()),
        built_in: true,
        ..Default::default()
    });
    let all: Vec<pb::Role> = built_in
        .chain(custom.into_iter().map(convert::custom_role))
        .collect();
    let (roles, next_page_token) = paging::page(
        all,
        &body.page_token,
        repo::page_size(body.page_size, 50, 200),
    )?;
    Ok(pb::ListRolesResponse {
        roles,
        next_page_token,
    })
}

/// Catalogue permissions, each once, in the order given; every unknown one is a violation.
fn catalogue_permissions(field: &str, requested: &[String]) -> Result<Vec<String>, Error> {
    let mut fields = Fields::new();
    if requested.is_empty() {
        fields.reject(Error::invalid(field, "must name at least one permission"));
    }
    let mut chosen: Vec<String> = Vec::new();
    for (i, name) in requested.iter().enumerate() {
        if !permissions::is_known(name) {
            fields.reject(Error::invalid(
                format!("{field}[{i}]"),
                format!("{name} is not in the permission catalogue"),
            ));
        } else if !chosen.contains(name) {
            chosen.push(name.clone());
        }
    }
    fields.finish()?;
    Ok(chosen)
}

#[tracing::instrument(skip_all)]
async fn create_role(
    state: &State,
    meta: &Meta,
    request: &Request<pb::CreateRoleRequest>,
) -> Result<pb::Role, Error> {
    let body = request.get_ref();
    let (claims, tenant) = authorize(request, &body.tenant_id, "identity.role.create")?;
    let role = body
        .role
        .as_ref()
        .ok_or_else(|| Error::invalid("role", "is required"))?;
    let mut fields = Fields::new();
    let name = fields.check(RoleName::parse("role.name", &role.name));
    let perms = fields.check(catalogue_permissions("role.permissions", &role.permissions));
    if role.description.chars().count() > 500 {
        fields.reject(Error::invalid(
            "role.description",
            "must be at most 500 characters",
        ));
    }
    fields.finish()?;
    let (Some(name), Some(perms)) = (name, perms) else {
        return Err(Error::internal(anyhow::anyhow!(
            "role fields parsed without violations yet missing"
        )));
    };

    let mut tx = db::tenant_tx(&state.db, tenant).await?;
    let row = roles::create(&mut tx, tenant, &name, &role.description, &perms).await?;
    let actor = context::actor(&claims);
    let created = pb::RoleCreated {
        role_id: row.id.to_string(),
        tenant_id: tenant.to_string(),
        name: row.name.clone(),
        permissions: row.permissions.clone(),
    };
    state
        .outbox
        .enqueue(
            &mut tx,
            publish::tenant_event(
                "identity.role.created",
                row.id,
                &created,
                tenant,
                meta,
                &actor,
            )?,
        )
        .await?;
    let mut entry = meta.audit(actor, "identity.role.create", "role", row.id);
    entry.metadata.insert("name".into(), row.name.clone());
    audit::record_tenant(&mut tx, tenant, &entry).await?;
    tx.commit().await?;
    Ok(convert::custom_role(row))
}

async fn list_permissions(
    request: &Request<pb::ListPermissionsRequest>,
) -> Result<pb::ListPermissionsResponse, Error> {
    context::claims(request)?;
    let body = request.get_ref();
    let all: Vec<pb::Permission> = permissions::CATALOGUE
        .iter()
        .map(|(name, description)| pb::Permission {
            name: (*name).to_owned(),
            description: (*description).to_owned(),
        })
        .collect();
    let (permissions, next_page_token) = paging::page(
        all,
        &body.page_token,
        repo::page_size(body.page_size, 100, 500),
    )?;
    Ok(pb::ListPermissionsResponse {
        permissions,
        next_page_token,
    })
}

#[tracing::instrument(skip_all)]
async fn create_api_key(
    state: &State,
    meta: &Meta,
    request: &Request<pb::CreateApiKeyRequest>,
) -> Result<pb::ApiKey, Error> {
    let body = request.get_ref();
    let (claims, tenant) = authorize(request, &body.tenant_id, "identity.api_key.create")?;
    let key = body
        .api_key
        .as_ref()
        .ok_or_else(|| Error::invalid("api_key", "is required"))?;
    let mut fields = Fields::new();
    let name = key.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        fields.reject(Error::invalid(
            "api_key.name",
            "is required, at most 100 characters",
        ));
    }
    let scopes = fields.check(catalogue_permissions("api_key.scopes", &key.scopes));
    // A key can never do more than its creator.
    for (i, scope) in key.scopes.iter().enumerate() {
        if permissions::is_known(scope) && !claims.has_permission(scope) {
            fields.reject(Error::invalid(
                format!("api_key.scopes[{i}]"),
                format!("{scope} is not a permission you hold"),
            ));
        }
    }
    let expires_at = match &key.expire_time {
        Some(ts) => fields.check(convert::from_timestamp("api_key.expire_time", ts)),
        None => None,
    };
    if expires_at.is_some_and(|at| at <= Utc::now()) {
        fields.reject(Error::invalid(
            "api_key.expire_time",
            "must be in the future",
        ));
    }
    fields.finish()?;
    let scopes = scopes.unwrap_or_default();

    let id = ApiKeyId::new();
    let secret = secrets::new_api_key_secret(id);
    let prefix = secrets::api_key_prefix(id);
    let mut tx = db::tenant_tx(&state.db, tenant).await?;
    let row = api_keys::create(
        &mut tx,
        NewApiKey {
            tenant,
            id,
            name,
            prefix: &prefix,
            secret_hash: &secrets::hash(&secret),
            scopes: &scopes,
            expires_at,
            created_by: &claims.sub,
        },
    )
    .await?;
    let actor = context::actor(&claims);
    let created = pb::ApiKeyCreated {
        key_id: id.to_string(),
        tenant_id: tenant.to_string(),
        name: row.name.clone(),
        prefix: prefix.clone(),
        scopes: scopes.clone(),
        expire_time: expires_at.map(convert::timestamp),
        created_by: claims.sub.clone(),
    };
    state
        .outbox
        .enqueue(
            &mut tx,
            publish::tenant_event(
                "identity.api_key.created",
                id,
                &created,
                tenant,
                meta,
                &actor,
            )?,
        )
        .await?;
    let mut entry = meta.audit(actor, "identity.api_key.create", "api_key", id);
    entry.metadata.insert("name".into(), row.name.clone());
    entry.metadata.insert("scopes".into(), scopes.join(" "));
    audit::record_tenant(&mut tx, tenant, &entry).await?;
    tx.commit().await?;
    Ok(convert::api_key(row, Some(secret)))
}

async fn list_api_keys(
    state: &State,
    request: &Request<pb::ListApiKeysRequest>,
) -> Result<pb::ListApiKeysResponse, Error> {
    let body = request.get_ref();
    let (_, tenant) = authorize(request, &body.tenant_id, "identity.api_key.list")?;
    let limit = repo::page_size(body.page_size, 50, 200);
    let after = paging::decode_after(&body.page_token)?.map(ApiKeyId::from_uuid);
    let mut tx = db::tenant_tx(&state.db, tenant).await?;
    let mut rows = api_keys::list_live(&mut tx, tenant, after, limit + 1).await?;
    tx.commit().await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| paging::encode_after(row.id.as_uuid()))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListApiKeysResponse {
        api_keys: rows
            .into_iter()
            .map(|row| convert::api_key(row, None))
            .collect(),
        next_page_token,
    })
}

#[tracing::instrument(skip_all)]
async fn delete_api_key(
    state: &State,
    meta: &Meta,
    request: &Request<pb::DeleteApiKeyRequest>,
) -> Result<(), Error> {
    let body = request.get_ref();
    let (claims, tenant) = authorize(request, &body.tenant_id, "identity.api_key.delete")?;
    let id = ApiKeyId::parse_field("key_id", &body.key_id)?;
    let mut tx = db::tenant_tx(&state.db, tenant).await?;
    let row = api_keys::revoke(&mut tx, tenant, id, &claims.sub)
        .await?
        .ok_or_else(|| Error::not_found("API key", id))?;
    let actor = context::actor(&claims);
    let revoked = pb::ApiKeyRevoked {
        key_id: id.to_string(),
        tenant_id: tenant.to_string(),
        revoked_by: claims.sub.clone(),
    };
    state
        .outbox
        .enqueue(
            &mut tx,
            publish::tenant_event(
                "identity.api_key.revoked",
                id,
                &revoked,
                tenant,
                meta,
                &actor,
            )?,
        )
        .await?;
    let mut entry = meta.audit(actor, "identity.api_key.delete", "api_key", id);
    entry.metadata.insert("name".into(), row.name);
    audit::record_tenant(&mut tx, tenant, &entry).await?;
    tx.commit().await?;
    Ok(())
}

async fn list_audit_events(
    state: &State,
    request: &Request<pb::ListAuditEventsRequest>,
) -> Result<pb::ListAuditEventsResponse, Error> {
    let body = request.get_ref();
    let (_, tenant) = authorize(request, &body.tenant_id, "identity.audit_event.list")?;
    let limit = repo::page_size(body.page_size, 50, 500);
    let mut fields = Fields::new();
    let start = body
        .start_time
        .as_ref()
        .and_then(|ts| fields.check(convert::from_timestamp("start_time", ts)));
    let end = body
        .end_time
        .as_ref()
        .and_then(|ts| fields.check(convert::from_timestamp("end_time", ts)));
    let before = fields
        .check(paging::decode_after(&body.page_token))
        .flatten();
    fields.finish()?;
    let filter = AuditFilter {
        actor_id: Some(body.actor_id.clone()).filter(|s| !s.is_empty()),
        action: Some(body.action.clone()).filter(|s| !s.is_empty()),
        start,
        end,
        before,
    };
    let mut tx = db::tenant_tx(&state.db, tenant).await?;
    let mut rows = audit::list_tenant(&mut tx, tenant, &filter, limit + 1).await?;
    tx.commit().await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| paging::encode_after(row.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListAuditEventsResponse {
        audit_events: rows.into_iter().map(convert::audit_event).collect(),
        next_page_token,
    })
}

/// Resolve an API key secret to its principal and mint its short-lived token. Every refusal is
/// the same AUTHN error, so a caller learns nothing about which keys exist.
#[tracing::instrument(skip_all)]
pub async fn exchange_api_key(
    state: &State,
    request: pb::ExchangeApiKeyRequest,
) -> Result<pb::ExchangeApiKeyResponse, Error> {
    let refused = || Error::unauthenticated("invalid API key");
    let id = secrets::api_key_id(request.secret.trim()).ok_or_else(refused)?;
    let mut tx = db::unscoped_tx(&state.db).await?;
    let tenant = api_keys::owner(&mut tx, id).await?.ok_or_else(refused)?;
    db::set_tenant(&mut tx, tenant).await?;
    if tenancy::tenant_state(&mut tx, tenant).await? != Some(TenantState::Active) {
        return Err(refused());
    }
    let key = api_keys::authenticate(&mut tx, tenant, id, &secrets::hash(request.secret.trim()))
        .await?
        .ok_or_else(refused)?;
    tx.commit().await?;
    let token = state.tokens.api_key_token(id, tenant, &key.scopes)?;
    Ok(pb::ExchangeApiKeyResponse {
        key_id: id.to_string(),
        tenant_id: tenant.to_string(),
        scopes: key.scopes,
        access_token: token.token,
        expires_in: token.expires_in as i32,
        key_expire_time: key.expires_at.map(convert::timestamp),
    })
}
