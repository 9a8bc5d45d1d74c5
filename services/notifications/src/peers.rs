//! The other services a message needs something from, called with this service's own service
//! token (`keel_kernel::service_client`): identity (a recipient's address, name and language;
//! fresh verification and password-reset tokens) and tenancy (fresh invitation tokens). A
//! tenant's name and owner come from tenancy's events instead (`repo::tenants`). Secrets are fetched at send time and never stored: not in events, not in jobs.

use keel_kernel::service_client::{ServiceTokens, lazy_channel};
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::identity::v1 as identity;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use keel_proto::identity::v1::user_service_client::UserServiceClient;
use keel_proto::tenancy::v1 as tenancy;
use keel_proto::tenancy::v1::membership_service_client::MembershipServiceClient;
use tonic::transport::Channel;

use crate::settings::Settings;

/// A recipient as identity knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    /// Their preferred language (a BCP 47 tag), "" when they chose none.
    pub locale: String,
}

/// A secret to put in a link, with what it was issued for.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub email: String,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone)]
pub struct Peers {
    identity: Channel,
    tenancy: Channel,
    tokens: ServiceTokens,
}

/// A peer's answer as a kernel error: its NOT_FOUND stays NOT_FOUND (the thing is gone, retrying
/// cannot help), anything unreachable is UNAVAILABLE (retried).
fn peer_error(peer: &str, status: tonic::Status) -> Error {
    match status.code() {
        tonic::Code::NotFound => Error::not_found(peer, status.message()),
        tonic::Code::InvalidArgument => Error::invalid(peer, status.message().to_owned()),
        tonic::Code::FailedPrecondition => {
            Error::failed_precondition(format!("{peer}: {}", status.message()))
        }
        _ => Error::unavailable(format!("{peer} is unavailable")).with_cause(status),
    }
}

impl Peers {
    pub fn new(settings: &Settings) -> Result<Peers, Error> {
        Ok(Peers {
            identity: lazy_channel("identity", &settings.identity_client.identity_url)?,
            tenancy: lazy_channel("tenancy", &settings.tenancy_url)?,
            tokens: ServiceTokens::new(&settings.identity_client)?,
        })
    }

    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, Error> {
        self.tokens.authorized(message).await
    }

    pub async fn user(&self, user: UserId) -> Result<Recipient, Error> {
        let request = self
            .request(identity::GetUserRequest {
                user_id: user.to_string(),
            })
            .await?;
        let found = UserServiceClient::new(self.identity.clone())
            .get_user(request)
            .await
            .map_err(|status| peer_error("user", status))?
            .into_inner();
        Ok(Recipient {
            user_id: user,
            email: found.email,
            display_name: found.display_name,
            locale: found.locale,
        })
    }

    /// A fresh email-verification token (earlier ones stop working).
    pub async fn verification_token(&self, verification_id: &str) -> Result<IssuedToken, Error> {
        let request = self
            .request(identity::IssueVerificationTokenRequest {
                verification_id: verification_id.to_owned(),
            })
            .await?;
        let issued = AuthServiceClient::new(self.identity.clone())
            .issue_verification_token(request)
            .await
            .map_err(|status| peer_error("verification", status))?
            .into_inner();
        Ok(IssuedToken {
            token: issued.token,
            email: issued.email,
            expires_at: issued
                .expire_time
                .and_then(|t| keel_kernel::grpc::from_timestamp("expire_time", &t).ok()),
        })
    }

    /// A fresh password-reset token (earlier ones stop working).
    pub async fn password_reset_token(&self, reset_id: &str) -> Result<IssuedToken, Error> {
        let request = self
            .request(identity::IssuePasswordResetTokenRequest {
                reset_id: reset_id.to_owned(),
            })
            .await?;
        let issued = AuthServiceClient::new(self.identity.clone())
            .issue_password_reset_token(request)
            .await
            .map_err(|status| peer_error("password reset", status))?
            .into_inner();
        Ok(IssuedToken {
            token: issued.token,
            email: issued.email,
            expires_at: issued
                .expire_time
                .and_then(|t| keel_kernel::grpc::from_timestamp("expire_time", &t).ok()),
        })
    }

    /// A fresh invitation token (earlier ones stop working).
    pub async fn invitation_token(
        &self,
        tenant: TenantId,
        invitation_id: &str,
    ) -> Result<IssuedToken, Error> {
        let request = self
            .request(tenancy::IssueInvitationTokenRequest {
                tenant_id: tenant.to_string(),
                invitation_id: invitation_id.to_owned(),
            })
            .await?;
        let issued = MembershipServiceClient::new(self.tenancy.clone())
            .issue_invitation_token(request)
            .await
            .map_err(|status| peer_error("invitation", status))?
            .into_inner();
        Ok(IssuedToken {
            token: issued.token,
            email: issued.email,
            expires_at: issued
                .expire_time
                .and_then(|t| keel_kernel::grpc::from_timestamp("expire_time", &t).ok()),
        })
    }
}
