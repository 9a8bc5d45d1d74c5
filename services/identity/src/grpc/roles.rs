//! Roles: the built-in ones and a tenant's custom ones, and the permission catalogue they draw on.

use keel_kernel::auth::roles as built_in_roles;
use keel_kernel::grpc::paging::{self, PageSize};
use keel_kernel::{Caller, Error, Violations, db};
use keel_proto::identity::v1 as pb;

use super::access::Access;
use super::convert;
use crate::domain::audit::{actions, targets};
use crate::domain::{AuditEntry, RoleName, permissions};
use crate::events::publish::{self, types};
use crate::repo::{audit, roles};

/// The longest description a custom role may have.
const MAX_DESCRIPTION: usize = 500;

/// Catalogue permissions, each once, in the order given; every unknown one is a violation.
pub(super) fn catalogue_permissions(
    field: &str,
    requested: &[String],
) -> Result<Vec<String>, Error> {
    let mut fields = Violations::default();
    if requested.is_empty() {
        fields.add(field, "must name at least one permission");
    }
    let mut chosen: Vec<String> = Vec::new();
    for (i, name) in requested.iter().enumerate() {
        if !permissions::is_known(name) {
            fields.add(
                format!("{field}[{i}]"),
                format!("{name} is not in the permission catalogue"),
            );
        } else if !chosen.contains(name) {
            chosen.push(name.clone());
        }
    }
    fields.finish()?;
    Ok(chosen)
}

/// AUTHZ unless the caller holds every one of `granted`: nobody hands out (to a role or a key)
/// a right they lack, or an admin could mint an owner-only role and bind themselves to it.
pub(super) fn require_all(caller: &Caller, granted: &[String]) -> Result<(), Error> {
    let missing: Vec<&str> = granted
        .iter()
        .filter(|permission| !caller.claims.has_permission(permission))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::forbidden(format!(
        "you cannot grant permissions you do not hold: {}",
        missing.join(", ")
    )))
}

impl Access {
    pub(super) async fn list_roles(
        &self,
        caller: &Caller,
        request: pb::ListRolesRequest,
    ) -> Result<pb::ListRolesResponse, Error> {
        let tenant = caller.tenant_field("tenant_id", &request.tenant_id)?;
        caller.require(permissions::ROLE_LIST)?;
        let size = PageSize::parse(request.page_size)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let custom = roles::list(&mut tx).await?;
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
            .chain(custom.iter().map(convert::custom_role))
            .collect();
        let (roles, next_page_token) = paging::page_in_memory(all, &request.page_token, size)?;
        Ok(pb::ListRolesResponse {
            roles,
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    pub(super) async fn create_role(
        &self,
        caller: &Caller,
        request: pb::CreateRoleRequest,
    ) -> Result<pb::Role, Error> {
        let ctx = &self.0;
        let tenant = caller.tenant_field("tenant_id", &request.tenant_id)?;
        caller.require(permissions::ROLE_CREATE)?;
        let role = request
            .role
            .as_ref()
            .ok_or_else(|| Error::invalid("role", "is required"))?;
        let mut fields = Violations::default();
        let name = fields.check(RoleName::parse("role.name", &role.name));
        let perms = fields.check(catalogue_permissions("role.permissions", &role.permissions));
        if role.description.chars().count() > MAX_DESCRIPTION {
            fields.add("role.description", "must be at most 500 characters");
        }
        fields.finish()?;
        let (Some(name), Some(perms)) = (name, perms) else {
            return Err(Error::internal(anyhow::anyhow!(
                "role fields parsed without violations yet missing"
            )));
        };
        require_all(caller, &perms)?;

        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let created = roles::create(&mut tx, &name, &role.description, &perms).await?;
        let actor = caller.actor();
        let payload = pb::RoleCreated {
            role_id: created.id.to_string(),
            tenant_id: tenant.to_string(),
            name: created.name.clone(),
            permissions: created.permissions.clone(),
        };
        let event = publish::tenant_event(
            types::ROLE_CREATED,
            created.id,
            &payload,
            tenant,
            &caller.meta,
            &actor,
        )?;
        ctx.outbox.enqueue(&mut tx, event).await?;
        let entry = AuditEntry::by(caller, actions::ROLE_CREATE, targets::ROLE, created.id)
            .with("name", created.name.clone());
        audit::record_tenant(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(convert::custom_role(&created))
    }

    pub(super) fn list_permissions(
        &self,
        request: pb::ListPermissionsRequest,
    ) -> Result<pb::ListPermissionsResponse, Error> {
        let size = PageSize::parse(request.page_size)?;
        let all: Vec<pb::Permission> = permissions::CATALOGUE
            .iter()
            .map(|(name, description)| pb::Permission {
                name: (*name).to_owned(),
                description: (*description).to_owned(),
            })
            .collect();
        let (permissions, next_page_token) =
            paging::page_in_memory(all, &request.page_token, size)?;
        Ok(pb::ListPermissionsResponse {
            permissions,
            next_page_token,
        })
    }
}
