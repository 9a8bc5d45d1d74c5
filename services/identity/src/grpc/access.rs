//! AccessService: a tenant's roles and the permission catalogue (`roles.rs`), API keys
//! (`api_keys.rs`) and audit log (`audit.rs`). Every tenant-scoped call takes its tenant from the
//! verified token (the request's `tenant_id` only has to agree) and runs in that tenant's
//! transaction.

use keel_kernel::Caller;
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::access_service_server::AccessService;
use tonic::{Request, Response, Status};

use super::Shared;

pub struct Access(pub Shared);

#[tonic::async_trait]
impl AccessService for Access {
    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_roles(&caller, request.into_inner()).await?,
        ))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_role(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        // Any verified caller may read the catalogue.
        Caller::from_request(&request)?;
        Ok(Response::new(self.list_permissions(request.into_inner())?))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.create_api_key(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_api_keys(&caller, request.into_inner()).await?,
        ))
    }

    async fn delete_api_key(
        &self,
        request: Request<pb::DeleteApiKeyRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.delete_api_key(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.list_audit_events(&caller, request.into_inner())
                .await?,
        ))
    }
}
