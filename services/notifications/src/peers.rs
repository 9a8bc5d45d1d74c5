//! The other services a message needs something from, called with this service's own service
//! token: identity (a recipient's address, name and language; fresh verification and
//! password-reset tokens) and tenancy (a tenant's name and default language; fresh invitation
//! tokens). Secrets are fetched at send time and never stored: not in events, not in jobs.

use std::sync::Arc;

use futures::future::BoxFuture;
use keel_kernel::{Error, TenantId, UserId};
use keel_proto::identity::v1 as identity;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use keel_proto::identity::v1::user_service_client::UserServiceClient;
use keel_proto::tenancy::v1 as tenancy;
use keel_proto::tenancy::v1::membership_service_client::MembershipServiceClient;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::settings::PeerSettings;

/// Where this service's bearer token for calls to its peers comes from.
pub trait TokenSource: Send + Sync + 'static {
    fn token(&self) -> BoxFuture<'_, Result<String, Error>>;
}

/// A recipient as identity knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    /// Their preferred language (a BCP 47 tag), "" when they chose none.
    pub locale: String,
}

/// A tenant as tenancy knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantInfo {
    pub name: String,
    /// Its creator, who receives what concerns the tenant as a whole (billing, approval).
    pub owner: Option<UserId>,
    /// The tenant's default language, "" when it chose none.
    pub default_locale: String,
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
    tokens: Arc<dyn TokenSource>,
}

fn channel(url: &str, key: &str) -> Result<Channel, Error> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|err| Error::internal(anyhow::anyhow!("config key `{key}`: {err}")))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(10))
        .connect_lazy())
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
    pub fn new(settings: &PeerSettings, tokens: Arc<dyn TokenSource>) -> Result<Peers, Error> {
        Ok(Peers {
            identity: channel(&settings.identity_url, "app.peers.identity_url")?,
            tenancy: channel(&settings.tenancy_url, "app.peers.tenancy_url")?,
            tokens,
        })
    }

    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, Error> {
        let token = self.tokens.token().await?;
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::internal(anyhow::anyhow!("a service token is not ASCII")))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
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
            // TODO(identity-svc): `found.locale` once identity.v1.User carries it.
            locale: String::new(),
        })
    }

    pub async fn tenant(&self, tenant: TenantId) -> Result<TenantInfo, Error> {
        let request = self
            .request(tenancy::GetTenantRequest {
                tenant_id: tenant.to_string(),
            })
            .await?;
        let found = TenantServiceClient::new(self.tenancy.clone())
            .get_tenant(request)
            .await
            .map_err(|status| peer_error("tenant", status))?
            .into_inner();
        Ok(TenantInfo {
            owner: UserId::parse_field("created_by", &found.created_by).ok(),
            name: found.name,
            // TODO(identity-svc): the tenant's default locale once tenancy carries it.
            default_locale: String::new(),
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
