//! Refusing, at the edge, calls for a tenant that is not ACTIVE or lacks the module a service
//! belongs to, from tenancy's `GetEntitlements`, cached briefly per tenant.
//!
//! The services check again (a stale cache entry is at most `cache_secs` old); the point here is a
//! clear reason for the client and no load on a service for calls it would refuse anyway.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http::HeaderValue;
use keel_kernel::TenantId;
use keel_proto::tenancy::v1::module_service_client::ModuleServiceClient;
use keel_proto::tenancy::v1::{GetEntitlementsRequest, TenantState};
use tonic::transport::Channel;

use crate::headers::REQUEST_ID;
use crate::problem::Problem;
use crate::upstream::Upstream;

const CACHE_MAX: usize = 10_000;

pub struct Entitlements {
    client: ModuleServiceClient<Channel>,
    upstream: Arc<str>,
    timeout: Duration,
    cache_for: Duration,
    cache: RwLock<HashMap<TenantId, (Instant, Arc<Snapshot>)>>,
}

/// What the gateway keeps of a tenant's entitlements.
#[derive(Debug)]
struct Snapshot {
    state: TenantState,
    modules: HashSet<String>,
}

impl Entitlements {
    pub fn new(upstream: &Upstream, cache_for: Duration) -> Entitlements {
        Entitlements {
            client: ModuleServiceClient::new(upstream.channel.clone()),
            upstream: upstream.name.clone(),
            timeout: upstream.timeout,
            cache_for,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Ok when `tenant` is ACTIVE and has `module` (if one is named); the caller's own token asks,
    /// so tenancy applies its own rules to who may read them.
    pub async fn check(
        &self,
        tenant: TenantId,
        module: Option<&str>,
        authorization: &HeaderValue,
        request_id: &HeaderValue,
    ) -> Result<(), Problem> {
        let snapshot = self.snapshot(tenant, authorization, request_id).await?;
        match snapshot.state {
            TenantState::Active => {}
            TenantState::Suspended => {
                return Err(Problem::forbidden(format!("tenant {tenant} is suspended")));
            }
            TenantState::PendingApproval => {
                return Err(Problem::forbidden(format!(
                    "tenant {tenant} is awaiting approval"
                )));
            }
            TenantState::Deleted => {
                return Err(Problem::forbidden(format!(
                    "tenant {tenant} has been deleted"
                )));
            }
            TenantState::Unspecified => {
                return Err(Problem::forbidden(format!("tenant {tenant} is not active")));
            }
        }
        match module {
            Some(module) if !snapshot.modules.contains(module) => Err(Problem::forbidden(format!(
                "the `{module}` module is not enabled for tenant {tenant}"
            ))),
            _ => Ok(()),
        }
    }

    async fn snapshot(
        &self,
        tenant: TenantId,
        authorization: &HeaderValue,
        request_id: &HeaderValue,
    ) -> Result<Arc<Snapshot>, Problem> {
        let now = Instant::now();
        if let Some((until, snapshot)) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant)
            && *until > now
        {
            return Ok(snapshot.clone());
        }
        let mut request = tonic::Request::new(GetEntitlementsRequest {
            tenant_id: tenant.to_string(),
        });
        request.set_timeout(self.timeout);
        if let Some(value) = authorization.to_str().ok().and_then(|v| v.parse().ok()) {
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(value) = request_id.to_str().ok().and_then(|v| v.parse().ok()) {
            request.metadata_mut().insert(REQUEST_ID, value);
        }
        let mut client = self.client.clone();
        let entitlements =
            match tokio::time::timeout(self.timeout, client.get_entitlements(request)).await {
                Err(_) => {
                    return Err(Problem::timeout(
                        "the tenancy service did not answer in time",
                    ));
                }
                Ok(Err(status)) => return Err(Problem::from_status(&status, &self.upstream)),
                Ok(Ok(response)) => response.into_inner(),
            };
        let snapshot = Arc::new(Snapshot {
            state: TenantState::try_from(entitlements.state).unwrap_or(TenantState::Unspecified),
            modules: entitlements.enabled_modules.into_iter().collect(),
        });
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (until, _)| *until > now);
        }
        cache.insert(tenant, (now + self.cache_for, snapshot.clone()));
        Ok(snapshot)
    }
}
