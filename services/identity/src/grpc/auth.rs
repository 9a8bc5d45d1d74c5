//! AuthService: registration, login and refresh (`login.rs`), logout and tenant switching
//! (`sessions.rs`), email verification (`verification.rs`), password reset
//! (`password_reset.rs`), the JWKS, the API key exchange (`api_keys.rs`), and service tokens
//! (`service_tokens.rs`).

use keel_kernel::{Caller, RequestMeta};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::auth_service_server::AuthService;
use tonic::{Request, Response, Status};

use super::{Shared, convert};

pub struct Auth(pub Shared);

#[tonic::async_trait]
impl AuthService for Auth {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let meta = RequestMeta::of(&request);
        Ok(Response::new(
            self.register(&meta, request.into_inner()).await?,
        ))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let meta = RequestMeta::of(&request);
        Ok(Response::new(
            self.login(&meta, request.into_inner()).await?,
        ))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let meta = RequestMeta::of(&request);
        Ok(Response::new(
            self.refresh(&meta, request.into_inner()).await?,
        ))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(self.logout(&caller).await?))
    }

    async fn switch_tenant(
        &self,
        request: Request<pb::SwitchTenantRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.switch_tenant(&caller, request.into_inner()).await?,
        ))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let meta = RequestMeta::of(&request);
        Ok(Response::new(
            self.verify_email(&meta, request.into_inner()).await?,
        ))
    }

    async fn request_email_verification(
        &self,
        request: Request<pb::RequestEmailVerificationRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.request_email_verification(&caller).await?,
        ))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.change_password(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::Jwks>, Status> {
        let jwks = self.0.tokens.keys().jwks();
        Ok(Response::new(pb::Jwks {
            keys: jwks.keys.iter().map(convert::jwk).collect(),
        }))
    }

    async fn issue_verification_token(
        &self,
        request: Request<pb::IssueVerificationTokenRequest>,
    ) -> Result<Response<pb::IssueVerificationTokenResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.issue_verification_token(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<()>, Status> {
        let meta = RequestMeta::of(&request);
        Ok(Response::new(
            self.request_password_reset(&meta, request.into_inner())
                .await?,
        ))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<()>, Status> {
        let meta = RequestMeta::of(&request);
        Ok(Response::new(
            self.reset_password(&meta, request.into_inner()).await?,
        ))
    }

    async fn issue_password_reset_token(
        &self,
        request: Request<pb::IssuePasswordResetTokenRequest>,
    ) -> Result<Response<pb::IssuePasswordResetTokenResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.issue_password_reset_token(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        let meta = RequestMeta::of(&request);
        Ok(Response::new(
            self.issue_service_token(&meta, request.into_inner())
                .await?,
        ))
    }

    async fn exchange_api_key(
        &self,
        request: Request<pb::ExchangeApiKeyRequest>,
    ) -> Result<Response<pb::ExchangeApiKeyResponse>, Status> {
        Ok(Response::new(
            self.exchange_api_key(request.into_inner()).await?,
        ))
    }
}
