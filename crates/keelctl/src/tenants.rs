//! `keelctl tenants`: tenancy's TenantService with a platform admin's token.

use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use serde_json::{Value, json};

use crate::cli::{Global, StateFilter, TenantsCommand};
use crate::error::{Failure, Outcome};
use crate::grpc::{Authed, Bearer};
use crate::output::{Report, Table};

/// The largest page tenancy serves.
const PAGE_SIZE: i32 = 200;

pub async fn run(global: &Global, command: TenantsCommand) -> Outcome<Report> {
    let target = format!("tenancy at {}", global.tenancy_grpc);
    let mut client = client(global)?;
    let refused = |status: tonic::Status| Failure::from_status(&target, &status);
    match command {
        TenantsCommand::List { state } => {
            let mut tenants = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_tenants(pb::ListTenantsRequest {
                        page_size: PAGE_SIZE,
                        page_token: page_token.clone(),
                        state: state.map(wire_state).unwrap_or_default() as i32,
                        all_tenants: true,
                    })
                    .await
                    .map_err(refused)?
                    .into_inner();
                tenants.extend(page.tenants);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            Ok(report(&tenants, "no tenants"))
        }
        TenantsCommand::Get { tenant_id } => {
            let tenant = client
                .get_tenant(pb::GetTenantRequest { tenant_id })
                .await
                .map_err(refused)?
                .into_inner();
            Ok(one(tenant))
        }
        TenantsCommand::Approve { tenant_id } => {
            let tenant = client
                .approve_tenant(pb::ApproveTenantRequest { tenant_id })
                .await
                .map_err(refused)?
                .into_inner();
            Ok(one(tenant))
        }
        TenantsCommand::Suspend { tenant_id, reason } => {
            let tenant = client
                .suspend_tenant(pb::SuspendTenantRequest { tenant_id, reason })
                .await
                .map_err(refused)?
                .into_inner();
            Ok(one(tenant))
        }
        TenantsCommand::Reactivate { tenant_id } => {
            let tenant = client
                .reactivate_tenant(pb::ReactivateTenantRequest { tenant_id })
                .await
                .map_err(refused)?
                .into_inner();
            Ok(one(tenant))
        }
    }
}

fn client(global: &Global) -> Outcome<TenantServiceClient<Authed>> {
    let bearer = Bearer::new(Some(global.token()?))?;
    Ok(TenantServiceClient::with_interceptor(
        crate::grpc::channel(&global.tenancy_grpc)?,
        bearer,
    ))
}

fn wire_state(state: StateFilter) -> pb::TenantState {
    match state {
        StateFilter::Pending => pb::TenantState::PendingApproval,
        StateFilter::Active => pb::TenantState::Active,
        StateFilter::Suspended => pb::TenantState::Suspended,
        StateFilter::Deleted => pb::TenantState::Deleted,
    }
}

/// The state as the CLI spells it (`--state` takes the same words).
fn state_name(state: i32) -> &'static str {
    match pb::TenantState::try_from(state) {
        Ok(pb::TenantState::PendingApproval) => "pending",
        Ok(pb::TenantState::Active) => "active",
        Ok(pb::TenantState::Suspended) => "suspended",
        Ok(pb::TenantState::Deleted) => "deleted",
        _ => "unspecified",
    }
}

fn time(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn to_json(tenant: &pb::Tenant) -> Value {
    json!({
        "id": tenant.id,
        "slug": tenant.slug,
        "name": tenant.name,
        "state": state_name(tenant.state),
        "plan": tenant.plan,
        "createdBy": tenant.created_by,
        "createTime": time(tenant.create_time.as_ref()),
    })
}

fn table(tenants: &[pb::Tenant], empty: &str) -> Table {
    let mut table =
        Table::new(["ID", "SLUG", "NAME", "STATE", "PLAN", "CREATED"]).when_empty(empty);
    for tenant in tenants {
        table.row([
            tenant.id.clone(),
            tenant.slug.clone(),
            tenant.name.clone(),
            state_name(tenant.state).to_owned(),
            tenant.plan.clone(),
            time(tenant.create_time.as_ref()),
        ]);
    }
    table
}

fn report(tenants: &[pb::Tenant], empty: &str) -> Report {
    Report {
        table: table(tenants, empty),
        json: json!({ "tenants": tenants.iter().map(to_json).collect::<Vec<_>>() }),
        unreachable: Vec::new(),
    }
}

fn one(tenant: pb::Tenant) -> Report {
    Report {
        table: table(std::slice::from_ref(&tenant), ""),
        json: to_json(&tenant),
        unreachable: Vec::new(),
    }
}
