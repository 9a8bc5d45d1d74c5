//! The test harness: the real marketplace service on port 0, against its own Postgres database
//! and its own NATS server, on a test clock, called through the generated gRPC client with
//! tokens from a test issuer that stands in for identity.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, Utc};
use keel_kernel::app::Running;
use keel_kernel::clock::TestClock;
use keel_kernel::config::{Config, DatabaseConfig};
use keel_kernel::{TenantId, UserId};
use keel_marketplace::Settings;
use keel_marketplace::settings::CommissionRule;
use keel_proto::marketplace::v1 as pb;
use keel_proto::marketplace::v1::marketplace_service_client::MarketplaceServiceClient;
use keel_testkit::EventLog;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// What a buyer or seller holds: everything but settling disputes and reading every order.
pub const PARTY: &[&str] = &[
    "marketplace.listing.read",
    "marketplace.listing.create",
    "marketplace.listing.update",
    "marketplace.offer.read",
    "marketplace.offer.create",
    "marketplace.order.read",
    "marketplace.order.create",
    "marketplace.order.update",
    "marketplace.dispute.read",
    "marketplace.dispute.create",
];

/// An operator: a party's rights plus settling disputes and reading every order.
pub const OPERATOR_EXTRA: &[&str] = &["marketplace.order.read_all", "marketplace.dispute.resolve"];

pub use keel_testkit::Bearer;

pub type Client = MarketplaceServiceClient<InterceptedService<Channel, Bearer>>;

/// A user of a tenant with a client carrying their token.
#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub tenant: TenantId,
    pub client: Client,
}

impl User {
    pub fn tenant_id(&self) -> String {
        self.tenant.to_string()
    }
}

pub struct TestApp {
    pub issuer: TestIssuer,
    pub nats: TestNats,
    pub db: TestDatabase,
    pub db_config: DatabaseConfig,
    pub clock: TestClock,
    pub channel: Channel,
    pub settings: Settings,
    pub running: Option<Running>,
}

/// Commission in tests: on `free` (the default) 2.5 % plus 0.100 KWD, 30 JPY, 0.30 EUR; on
/// `pro` 1 %.
pub fn test_settings() -> Settings {
    let mut commission = BTreeMap::new();
    commission.insert(
        "free".to_owned(),
        CommissionRule {
            basis_points: 250,
            fixed_minor_units: [("KWD", 100), ("JPY", 30), ("EUR", 30)]
                .into_iter()
                .map(|(c, a)| (c.to_owned(), a))
                .collect(),
        },
    );
    commission.insert(
        "pro".to_owned(),
        CommissionRule {
            basis_points: 100,
            fixed_minor_units: BTreeMap::new(),
        },
    );
    Settings {
        commission,
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let issuer = TestIssuer::start().await;
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let db_config = db.provision("marketplace").await;
        // The real time (to the second): idempotency keys are stamped by the database's clock.
        let clock = TestClock::new(
            Utc::now()
                .duration_trunc(chrono::Duration::seconds(1))
                .unwrap(),
        );
        let mut app = TestApp {
            issuer,
            nats,
            db,
            db_config,
            clock,
            channel: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            settings: test_settings(),
            running: None,
        };
        app.start().await;
        app
    }

    pub fn config(&self) -> Config<Settings> {
        let mut config = stack::config_with(
            "marketplace",
            self.db_config.clone(),
            stack::nats_config(&self.nats.url()),
            self.settings.clone(),
        );
        config.auth = self.issuer.auth_config();
        config
    }

    pub async fn start(&mut self) {
        let running = keel_marketplace::build_with_clock(self.config(), self.clock.shared())
            .await
            .expect("marketplace starts");
        self.channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to marketplace");
        self.running = Some(running);
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }

    /// Stop the service and start it again on the same database and broker (jobs are durable).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
        self.start().await;
    }

    /// Run every job due at the test clock's time; how many ran.
    pub async fn run_jobs(&self) -> usize {
        self.running
            .as_ref()
            .expect("running")
            .jobs
            .run_due()
            .await
            .expect("jobs run")
    }

    /// Move the clock on by `by` and run what fell due.
    pub async fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
        self.run_jobs().await;
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.shared().now()
    }

    pub fn client(&self, token: &str) -> Client {
        MarketplaceServiceClient::with_interceptor(self.channel.clone(), Bearer::token(token))
    }

    /// The same buyer or seller with a client on the current channel (after a restart).
    pub fn reconnect(&self, user: &User) -> User {
        self.user_as(user.id, user.tenant, PARTY)
    }

    fn user_with(&self, tenant: TenantId, perms: &[&str]) -> User {
        self.user_as(UserId::new(), tenant, perms)
    }

    fn user_as(&self, id: UserId, tenant: TenantId, perms: &[&str]) -> User {
        let token = self.issuer.token(
            TokenSpec::user(id)
                .tenant(tenant)
                .role("member")
                .perms(perms.iter().copied()),
        );
        User {
            id,
            tenant,
            client: self.client(&token),
        }
    }

    /// A buyer or seller of `tenant`.
    pub fn user(&self, tenant: TenantId) -> User {
        self.user_with(tenant, PARTY)
    }

    /// An operator of `tenant`: may settle disputes and read every order.
    pub fn operator(&self, tenant: TenantId) -> User {
        let perms: Vec<&str> = PARTY.iter().chain(OPERATOR_EXTRA).copied().collect();
        self.user_with(tenant, &perms)
    }

    /// A DRAFT listing of `seller`.
    pub async fn draft(
        &self,
        seller: &User,
        title: &str,
        unit_price: i64,
        currency: &str,
        quantity: i64,
    ) -> pb::Listing {
        seller
            .client
            .clone()
            .create_listing(pb::CreateListingRequest {
                tenant_id: seller.tenant_id(),
                listing: Some(pb::Listing {
                    title: title.into(),
                    description: format!("{title}, as described"),
                    unit_price,
                    currency: currency.into(),
                    quantity_available: quantity,
                    ..Default::default()
                }),
            })
            .await
            .expect("create listing")
            .into_inner()
    }

    /// A PUBLISHED listing of `seller`.
    pub async fn listing(
        &self,
        seller: &User,
        unit_price: i64,
        currency: &str,
        quantity: i64,
    ) -> pb::Listing {
        let draft = self
            .draft(seller, "Pallet of bricks", unit_price, currency, quantity)
            .await;
        publish(seller, &draft.id).await
    }

    /// A message reader of this app's NATS server.
    pub async fn events(&self) -> EventLog {
        EventLog::connect(&self.nats.url()).await
    }
}

pub async fn publish(seller: &User, listing: &str) -> pb::Listing {
    seller
        .client
        .clone()
        .publish_listing(pb::PublishListingRequest {
            tenant_id: seller.tenant_id(),
            listing_id: listing.into(),
        })
        .await
        .expect("publish listing")
        .into_inner()
}

pub fn order_request(
    buyer: &User,
    listing: &str,
    quantity: i64,
    key: &str,
) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        tenant_id: buyer.tenant_id(),
        order: Some(pb::Order {
            listing_id: listing.into(),
            quantity,
            ..Default::default()
        }),
        request_id: key.into(),
    }
}

/// CreateOrder as `buyer`, with idempotency key `key` (none when empty).
pub async fn try_order(
    buyer: &User,
    listing: &str,
    quantity: i64,
    key: &str,
) -> Result<pb::Order, tonic::Status> {
    buyer
        .client
        .clone()
        .create_order(order_request(buyer, listing, quantity, key))
        .await
        .map(tonic::Response::into_inner)
}

pub async fn order(buyer: &User, listing: &str, quantity: i64) -> pb::Order {
    buyer
        .client
        .clone()
        .create_order(order_request(buyer, listing, quantity, ""))
        .await
        .expect("create order")
        .into_inner()
}

pub async fn get_listing(user: &User, listing: &str) -> pb::Listing {
    user.client
        .clone()
        .get_listing(pb::GetListingRequest {
            tenant_id: user.tenant_id(),
            listing_id: listing.into(),
        })
        .await
        .expect("get listing")
        .into_inner()
}

pub async fn get_order(user: &User, order: &str) -> pb::Order {
    user.client
        .clone()
        .get_order(pb::GetOrderRequest {
            tenant_id: user.tenant_id(),
            order_id: order.into(),
        })
        .await
        .expect("get order")
        .into_inner()
}

pub async fn fulfill(seller: &User, order: &str) -> Result<pb::Order, tonic::Status> {
    seller
        .client
        .clone()
        .fulfill_order(pb::FulfillOrderRequest {
            tenant_id: seller.tenant_id(),
            order_id: order.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn complete(buyer: &User, order: &str) -> Result<pb::Order, tonic::Status> {
    buyer
        .client
        .clone()
        .complete_order(pb::CompleteOrderRequest {
            tenant_id: buyer.tenant_id(),
            order_id: order.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn cancel(user: &User, order: &str) -> Result<pb::Order, tonic::Status> {
    user.client
        .clone()
        .cancel_order(pb::CancelOrderRequest {
            tenant_id: user.tenant_id(),
            order_id: order.into(),
            reason: "changed my mind".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn dispute(user: &User, order: &str) -> Result<pb::Dispute, tonic::Status> {
    user.client
        .clone()
        .create_dispute(pb::CreateDisputeRequest {
            tenant_id: user.tenant_id(),
            dispute: Some(pb::Dispute {
                order_id: order.into(),
                reason: "the bricks arrived broken".into(),
                ..Default::default()
            }),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn resolve(
    user: &User,
    dispute: &str,
    resolution: pb::DisputeResolution,
    refund_amount: i64,
) -> Result<pb::Dispute, tonic::Status> {
    user.client
        .clone()
        .resolve_dispute(pb::ResolveDisputeRequest {
            tenant_id: user.tenant_id(),
            dispute_id: dispute.into(),
            resolution: resolution as i32,
            note: "photos checked".into(),
            refund_amount,
        })
        .await
        .map(tonic::Response::into_inner)
}
