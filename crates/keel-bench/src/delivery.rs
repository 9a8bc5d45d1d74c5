//! Delivery: task transitions per second with 16 concurrent clients (each move one transaction
//! with its row lock, an outbox event and a change-log row), and the watch stream's latency from
//! a committed move to the change on the stream.

use std::time::{Duration, Instant};

use keel_delivery::Settings;
use keel_kernel::auth::roles;
use keel_kernel::{TenantId, UserId};
use keel_proto::delivery::v1 as pb;
use keel_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use keel_proto::tenancy::v1 as tenancy;
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use keel_testkit::{EventLog, TestDatabase, TestNats, stack};
use tonic::transport::Channel;

use crate::report::{Report, millis, quantile};

const CLIENTS: usize = 16;

struct Bench {
    issuer: TestIssuer,
    _broker: TestNats,
    database: TestDatabase,
    _running: keel_kernel::app::Running,
    channel: Channel,
    log: EventLog,
    tenant: TenantId,
    members: i64,
}

async fn setup() -> anyhow::Result<Bench> {
    let issuer = TestIssuer::start().await;
    let broker = TestNats::start().await;
    let database = TestDatabase::create().await;
    let mut config = stack::config_with(
        "delivery",
        database.provision("delivery").await,
        stack::nats_config(&broker.url()),
        Settings::default(),
    );
    config.auth = issuer.auth_config();
    config.database.max_connections = 32;
    let running = keel_delivery::build(config)
        .await
        .map_err(|err| anyhow::anyhow!("delivery starts: {err}"))?;
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))?
        .connect()
        .await?;
    let log = EventLog::connect(&broker.url()).await;
    Ok(Bench {
        issuer,
        _broker: broker,
        database,
        _running: running,
        channel,
        log,
        tenant: TenantId::new(),
        members: 0,
    })
}

type Client =
    DeliveryServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl Bench {
    fn client(&self, user: UserId) -> anyhow::Result<Client> {
        let token = self.issuer.token(
            TokenSpec::user(user)
                .tenant(self.tenant)
                .role(roles::MEMBER)
                .perms(roles::built_in(roles::MEMBER).unwrap_or_default()),
        );
        Ok(DeliveryServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(format!("Bearer {token}").parse()?),
        ))
    }

    /// Tenancy says `user` joined; waits until delivery's projection has it.
    async fn join(&mut self, user: UserId) -> anyhow::Result<()> {
        self.members += 1;
        let added = tenancy::MemberAdded {
            tenant_id: self.tenant.to_string(),
            user_id: user.to_string(),
            role: roles::MEMBER.into(),
        };
        self.log
            .publish(
                "tenancy",
                "tenancy.member.added",
                &self.tenant.to_string(),
                self.members,
                &added,
            )
            .await;
        let pool = self.database.admin_pool().await;
        for _ in 0..400 {
            let row: Option<(bool,)> = sqlx::query_as(
                "SELECT active FROM delivery.members WHERE tenant_id = $1 AND user_id = $2",
            )
            .bind(self.tenant.as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(&pool)
            .await?;
            if row.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("member {user} never arrived")
    }

    async fn project(&self, client: &mut Client) -> anyhow::Result<pb::Project> {
        Ok(client
            .create_project(pb::CreateProjectRequest {
                tenant_id: self.tenant.to_string(),
                project: Some(pb::Project {
                    name: "bench".into(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner())
    }

    async fn assigned_task(
        &self,
        client: &mut Client,
        project: &pb::Project,
        worker: UserId,
    ) -> anyhow::Result<pb::Task> {
        Ok(client
            .create_task(pb::CreateTaskRequest {
                tenant_id: self.tenant.to_string(),
                project_id: project.id.clone(),
                task: Some(pb::Task {
                    title: "bench task".into(),
                    assignee_id: worker.to_string(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner())
    }
}

/// One rework cycle's moves: start and submit by the worker, reject by the reviewer.
async fn cycle(
    worker: &mut Client,
    reviewer: &mut Client,
    tenant: TenantId,
    task: &pb::Task,
) -> anyhow::Result<()> {
    let ids = || (tenant.to_string(), task.project_id.clone(), task.id.clone());
    let (tenant_id, project_id, task_id) = ids();
    worker
        .start_task(pb::StartTaskRequest {
            tenant_id,
            project_id,
            task_id,
            etag: String::new(),
        })
        .await?;
    let (tenant_id, project_id, task_id) = ids();
    worker
        .submit_task(pb::SubmitTaskRequest {
            tenant_id,
            project_id,
            task_id,
            ..Default::default()
        })
        .await?;
    let (tenant_id, project_id, task_id) = ids();
    reviewer
        .reject_task(pb::RejectTaskRequest {
            tenant_id,
            project_id,
            task_id,
            reason: "again".into(),
            etag: String::new(),
        })
        .await?;
    Ok(())
}

pub async fn transitions_and_watch_latency(
    report: &mut Report,
    cycles_per_client: usize,
    watched_moves: usize,
) -> anyhow::Result<()> {
    let mut bench = setup().await?;
    let reviewer = UserId::new();
    bench.join(reviewer).await?;
    let mut lanes = Vec::new();
    for _ in 0..CLIENTS {
        let worker = UserId::new();
        bench.join(worker).await?;
        let mut worker_client = bench.client(worker)?;
        // One project per client: moves of one project share its change-sequence row lock.
        let project = bench.project(&mut worker_client).await?;
        let task = bench
            .assigned_task(&mut worker_client, &project, worker)
            .await?;
        lanes.push((worker_client, bench.client(reviewer)?, task));
    }
    let tenant = bench.tenant;
    let started = Instant::now();
    let runs = lanes.into_iter().map(|(mut worker, mut reviewer, task)| {
        tokio::spawn(async move {
            for _ in 0..cycles_per_client {
                cycle(&mut worker, &mut reviewer, tenant, &task).await?;
            }
            Ok::<_, anyhow::Error>(())
        })
    });
    for run in futures::future::join_all(runs).await {
        run??;
    }
    let elapsed = started.elapsed();
    let moves = CLIENTS * cycles_per_client * 3;
    let per_second = moves as f64 / elapsed.as_secs_f64();

    // Watch latency: one watcher, one move at a time; from the moment the move's RPC answered
    // (its transaction committed) to the change arriving on the stream.
    let worker = UserId::new();
    bench.join(worker).await?;
    let mut worker_client = bench.client(worker)?;
    let mut reviewer_client = bench.client(reviewer)?;
    let project = bench.project(&mut worker_client).await?;
    let task = bench
        .assigned_task(&mut worker_client, &project, worker)
        .await?;
    let mut stream = bench
        .client(reviewer)?
        .watch_tasks(pb::WatchTasksRequest {
            tenant_id: tenant.to_string(),
            project_id: project.id.clone(),
            after_event_id: String::new(),
        })
        .await?
        .into_inner();
    let mut latencies = Vec::with_capacity(watched_moves);
    let mut state = 0usize;
    while latencies.len() < watched_moves {
        let (tenant_id, project_id, task_id) =
            (tenant.to_string(), project.id.clone(), task.id.clone());
        match state % 3 {
            0 => {
                worker_client
                    .start_task(pb::StartTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        etag: String::new(),
                    })
                    .await?;
            }
            1 => {
                worker_client
                    .submit_task(pb::SubmitTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        ..Default::default()
                    })
                    .await?;
            }
            _ => {
                reviewer_client
                    .reject_task(pb::RejectTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        reason: "again".into(),
                        etag: String::new(),
                    })
                    .await?;
            }
        }
        let committed = Instant::now();
        state += 1;
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await??
            .ok_or_else(|| anyhow::anyhow!("the watch stream ended"))?;
        latencies.push(committed.elapsed());
    }
    latencies.sort();
    report.section(
        "Delivery: task transitions and the watch stream",
        &format!(
            "{CLIENTS} concurrent gRPC clients (direct, no gateway), each moving its own task in its own \
             project through start → submit → reject {cycles_per_client} times; every move is one \
             transaction (task row lock, workflow check, approval row for rejections, outbox event, \
             change-log row). Then one watcher on a project while {watched_moves} moves are made one at \
             a time: latency from the move's answer (its commit) to the change on the WatchTasks stream \
             (outbox relay → JetStream → ordered consumer wake-up → change-log read)."
        ),
        vec![
            ("moves".into(), moves.to_string()),
            ("transitions per second".into(), format!("{per_second:.0}")),
            ("watch latency p50".into(), millis(quantile(&latencies, 0.5))),
            ("watch latency p99".into(), millis(quantile(&latencies, 0.99))),
        ],
    );
    Ok(())
}
