//! Marketplace orders per second with 16 concurrent buyers, all on one hot listing (every order
//! takes the same listing row's lock for its stock reservation) and spread over 1,000 listings,
//! over direct gRPC, with p50/p99 latency per order.

use std::time::{Duration, Instant};

use keel_kernel::{TenantId, UserId};
use keel_proto::marketplace::v1 as pb;
use keel_proto::marketplace::v1::marketplace_service_client::MarketplaceServiceClient;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::report::{Report, millis, quantile};

const CLIENTS: usize = 16;
const SPREAD_LISTINGS: usize = 1_000;

const PERMISSIONS: &[&str] = &[
    "marketplace.listing.read",
    "marketplace.listing.create",
    "marketplace.listing.update",
    "marketplace.order.read",
    "marketplace.order.create",
];

struct Client {
    grpc: MarketplaceServiceClient<Channel>,
    bearer: MetadataValue<Ascii>,
    tenant: String,
}

impl Client {
    fn request<T>(&self, body: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        request
    }

    async fn listing(&self, quantity: i64) -> anyhow::Result<String> {
        let draft = self
            .grpc
            .clone()
            .create_listing(self.request(pb::CreateListingRequest {
                tenant_id: self.tenant.clone(),
                listing: Some(pb::Listing {
                    title: "Bench bricks".into(),
                    unit_price: 1_250,
                    currency: "EUR".into(),
                    quantity_available: quantity,
                    ..Default::default()
                }),
            }))
            .await?
            .into_inner();
        self.grpc
            .clone()
            .publish_listing(self.request(pb::PublishListingRequest {
                tenant_id: self.tenant.clone(),
                listing_id: draft.id.clone(),
            }))
            .await?;
        Ok(draft.id)
    }

    async fn order(&self, listing: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.grpc
            .clone()
            .create_order(self.request(pb::CreateOrderRequest {
                tenant_id: self.tenant.clone(),
                order: Some(pb::Order {
                    listing_id: listing.into(),
                    quantity: 1,
                    ..Default::default()
                }),
                request_id: uuid::Uuid::new_v4().to_string(),
            }))
            .await?;
        Ok(started.elapsed())
    }
}

/// `CLIENTS` buyers × `per_client` orders; the i-th order of client c goes to
/// `listings[(c * per_client + i) % len]`. Orders per second and sorted latencies.
async fn run(
    buyers: &[std::sync::Arc<Client>],
    listings: &std::sync::Arc<Vec<String>>,
    per_client: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(buyers.len());
    for (c, buyer) in buyers.iter().enumerate() {
        let (buyer, listings) = (buyer.clone(), listings.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let listing = &listings[(c * per_client + i) % listings.len()];
                latencies.push(buyer.order(listing).await?);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    Ok((rate, latencies))
}

pub async fn orders_hot_vs_spread(report: &mut Report, per_client: usize) -> anyhow::Result<()> {
    let issuer = TestIssuer::start().await;
    let database = TestDatabase::create().await;
    let broker = TestNats::start().await;
    let mut config = stack::config_with(
        "marketplace",
        database.provision("marketplace").await,
        stack::nats_config(&broker.url()),
        keel_marketplace::Settings::default(),
    );
    config.auth = issuer.auth_config();
    config.telemetry.log_level = "error".into();
    config.grpc.concurrency_limit = 4096;
    let running = keel_marketplace::build(config).await?;
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))?
        .connect()
        .await?;
    let tenant = TenantId::new();
    let client = |user: UserId| -> anyhow::Result<Client> {
        let token = issuer.token(
            TokenSpec::user(user)
                .tenant(tenant)
                .perms(PERMISSIONS.iter().copied()),
        );
        Ok(Client {
            grpc: MarketplaceServiceClient::new(channel.clone()),
            bearer: format!("Bearer {token}").parse()?,
            tenant: tenant.to_string(),
        })
    };
    let seller = client(UserId::new())?;
    let buyers: Vec<std::sync::Arc<Client>> = (0..CLIENTS)
        .map(|_| client(UserId::new()).map(std::sync::Arc::new))
        .collect::<anyhow::Result<_>>()?;
    let units = (CLIENTS * per_client * 4) as i64;
    let hot = std::sync::Arc::new(vec![seller.listing(units).await?]);
    let mut spread = Vec::with_capacity(SPREAD_LISTINGS);
    for _ in 0..SPREAD_LISTINGS {
        spread.push(seller.listing(units).await?);
    }
    let spread = std::sync::Arc::new(spread);

    // Warm connections and plans on both shapes, then alternate the runs.
    run(&buyers, &hot, 10).await?;
    run(&buyers, &spread, 10).await?;
    let (hot_rate, hot_latency) = run(&buyers, &hot, per_client).await?;
    let (spread_rate, spread_latency) = run(&buyers, &spread, per_client).await?;

    running.stop().await?;
    report.section(
        "Marketplace orders: one hot listing vs 1,000 listings",
        &format!(
            "`CreateOrder` over direct gRPC (a bearer JWT verified per call, an idempotency key per \
             order, the stock reserved with one conditional UPDATE of the listing row, the order \
             and its `marketplace.order.placed` outbox row in the same transaction). {CLIENTS} \
             concurrent buyers × {per_client} orders of one unit each: first all on one listing \
             (each reservation waits for the previous one's row lock until its commit), then spread \
             round-robin over {SPREAD_LISTINGS} listings. Service, load and Postgres share the \
             machine's cores."
        ),
        vec![
            ("orders/s, one hot listing".into(), format!("{hot_rate:.0}")),
            ("p50 / p99, one hot listing".into(), format!("{} / {}", millis(quantile(&hot_latency, 0.5)), millis(quantile(&hot_latency, 0.99)))),
            ("orders/s, 1,000 listings".into(), format!("{spread_rate:.0}")),
            ("p50 / p99, 1,000 listings".into(), format!("{} / {}", millis(quantile(&spread_latency, 0.5)), millis(quantile(&spread_latency, 0.99)))),
        ],
    );
    Ok(())
}
