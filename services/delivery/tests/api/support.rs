//! The test harness: the real delivery service on port 0, against its own Postgres database and
//! its own NATS server, on a test clock, called through the generated gRPC client with tokens
//! from a test issuer standing in for identity. Tenancy's member events are published on
//! JetStream exactly as tenancy's relay publishes them (`EventLog::publish`).

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use keel_delivery::Settings;
use keel_delivery::domain::{Move, TaskState};
use keel_kernel::app::Running;
use keel_kernel::auth::roles;
use keel_kernel::clock::TestClock;
use keel_kernel::config::{Config, DatabaseConfig};
use keel_kernel::{TenantId, UserId};
use keel_proto::delivery::v1 as pb;
use keel_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use keel_proto::tenancy::v1 as tenancy;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use keel_testkit::{EventLog, eventually};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use keel_testkit::Bearer;

pub type Authed = InterceptedService<Channel, Bearer>;
pub type Client = DeliveryServiceClient<Authed>;

pub fn start_time() -> DateTime<Utc> {
    "2027-03-15T09:00:00Z".parse().unwrap()
}

pub struct TestApp {
    pub issuer: TestIssuer,
    pub nats: TestNats,
    pub db: TestDatabase,
    /// The service role's database settings (no BYPASSRLS), for RLS assertions.
    pub db_config: DatabaseConfig,
    pub clock: TestClock,
    pub channel: Channel,
    pub log: EventLog,
    /// Tenancy's membership sequence, as its events would carry it.
    member_version: AtomicI64,
    pub running: Option<Running>,
}

/// A tenant's people: a lead (admin) who plans, two workers (members), two approvers (members).
pub struct Team {
    pub tenant: TenantId,
    pub lead: UserId,
    pub other_lead: UserId,
    pub worker: UserId,
    pub approver: UserId,
    pub other_approver: UserId,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let issuer = TestIssuer::start().await;
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let db_config = db.provision("delivery").await;
        let log = EventLog::connect(&nats.url()).await;
        let mut app = TestApp {
            issuer,
            nats,
            db,
            db_config,
            clock: TestClock::new(start_time()),
            channel: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            log,
            member_version: AtomicI64::new(0),
            running: None,
        };
        app.start().await;
        app
    }

    pub fn config(&self) -> Config<Settings> {
        let mut config = stack::config_with(
            "delivery",
            self.db_config.clone(),
            stack::nats_config(&self.nats.url()),
            Settings::default(),
        );
        config.auth = self.issuer.auth_config();
        config
    }

    /// Start (or start again, after `stop_service`) the service on the same database.
    pub async fn start(&mut self) {
        let running = keel_delivery::build_with_clock(self.config(), self.clock.shared())
            .await
            .expect("delivery starts");
        self.channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to delivery");
        self.running = Some(running);
    }

    pub async fn stop_service(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
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

    pub fn client(&self, token: &str) -> Client {
        let bearer = Bearer(Some(format!("Bearer {token}").parse().expect("ascii")));
        DeliveryServiceClient::with_interceptor(self.channel.clone(), bearer)
    }

    pub fn token(&self, tenant: TenantId, user: UserId, role: &str) -> String {
        self.issuer.token(
            TokenSpec::user(user)
                .tenant(tenant)
                .role(role)
                .perms(roles::built_in(role).expect("a built-in role")),
        )
    }

    /// `user` of `tenant` with a built-in role.
    pub fn as_user(&self, tenant: TenantId, user: UserId, role: &str) -> Client {
        self.client(&self.token(tenant, user, role))
    }

    /// Tenancy says `user` joined `tenant`; returns once delivery's projection has it.
    pub async fn join(&self, tenant: TenantId, user: UserId) {
        let version = self.member_version.fetch_add(1, Ordering::SeqCst) + 1;
        self.publish_member(tenant, user, true, version).await;
        self.wait_member(tenant, user, true).await;
    }

    /// Tenancy says `user` left `tenant`; returns once delivery's projection has it.
    pub async fn leave(&self, tenant: TenantId, user: UserId) {
        let version = self.member_version.fetch_add(1, Ordering::SeqCst) + 1;
        self.publish_member(tenant, user, false, version).await;
        self.wait_member(tenant, user, false).await;
    }

    pub async fn publish_member(&self, tenant: TenantId, user: UserId, added: bool, version: i64) {
        if added {
            let payload = tenancy::MemberAdded {
                tenant_id: tenant.to_string(),
                user_id: user.to_string(),
                role: roles::MEMBER.into(),
            };
            self.log
                .publish(
                    "tenancy",
                    "tenancy.member.added",
                    &tenant.to_string(),
                    version,
                    &payload,
                )
                .await;
        } else {
            let payload = tenancy::MemberRemoved {
                tenant_id: tenant.to_string(),
                user_id: user.to_string(),
            };
            self.log
                .publish(
                    "tenancy",
                    "tenancy.member.removed",
                    &tenant.to_string(),
                    version,
                    &payload,
                )
                .await;
        }
    }

    pub async fn wait_member(&self, tenant: TenantId, user: UserId, active: bool) {
        let pool = self.db.admin_pool().await;
        eventually(|| {
            let pool = pool.clone();
            async move {
                let row: Option<(bool,)> = sqlx::query_as(
                    "SELECT active FROM delivery.members WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant.as_uuid())
                .bind(user.as_uuid())
                .fetch_optional(&pool)
                .await
                .unwrap();
                (row.map(|r| r.0) == Some(active)).then_some(())
            }
        })
        .await;
    }

    /// A fresh tenant whose people are all members.
    pub async fn team(&self) -> Team {
        let team = Team {
            tenant: TenantId::new(),
            lead: UserId::new(),
            other_lead: UserId::new(),
            worker: UserId::new(),
            approver: UserId::new(),
            other_approver: UserId::new(),
        };
        for user in [
            team.lead,
            team.other_lead,
            team.worker,
            team.approver,
            team.other_approver,
        ] {
            self.join(team.tenant, user).await;
        }
        team
    }

    pub async fn admin_pool(&self) -> sqlx::PgPool {
        self.db.admin_pool().await
    }

    /// A pool connected as delivery's own role, with its search path.
    pub async fn service_pool(&self) -> sqlx::PgPool {
        keel_kernel::db::connect(
            "delivery-test",
            &self.db_config,
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("service pool")
    }
}

impl Team {
    pub fn lead(&self, app: &TestApp) -> Client {
        app.as_user(self.tenant, self.lead, roles::ADMIN)
    }
    pub fn worker(&self, app: &TestApp) -> Client {
        app.as_user(self.tenant, self.worker, roles::MEMBER)
    }
    pub fn approver(&self, app: &TestApp) -> Client {
        app.as_user(self.tenant, self.approver, roles::MEMBER)
    }

    pub async fn project(&self, app: &TestApp, required_approvals: i32) -> pb::Project {
        self.lead(app)
            .create_project(pb::CreateProjectRequest {
                tenant_id: self.tenant.to_string(),
                project: Some(pb::Project {
                    name: "Website relaunch".into(),
                    required_approvals,
                    ..Default::default()
                }),
            })
            .await
            .expect("create project")
            .into_inner()
    }

    pub async fn task(&self, app: &TestApp, project: &pb::Project, title: &str) -> pb::Task {
        self.lead(app)
            .create_task(pb::CreateTaskRequest {
                tenant_id: self.tenant.to_string(),
                project_id: project.id.clone(),
                task: Some(pb::Task {
                    title: title.into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create task")
            .into_inner()
    }

    /// Make `by` on `task` as `actor`, with what the move needs (the worker as assignee, a
    /// reason for a rejection).
    pub async fn make(
        &self,
        app: &TestApp,
        actor: UserId,
        task: &pb::Task,
        by: Move,
    ) -> Result<pb::Task, tonic::Status> {
        let role = if actor == self.lead || actor == self.other_lead {
            roles::ADMIN
        } else {
            roles::MEMBER
        };
        let mut client = app.as_user(self.tenant, actor, role);
        let tenant_id = self.tenant.to_string();
        let project_id = task.project_id.clone();
        let task_id = task.id.clone();
        let answer = match by {
            Move::Assign => {
                client
                    .assign_task(pb::AssignTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        assignee_id: self.worker.to_string(),
                        etag: String::new(),
                    })
                    .await
            }
            Move::Start => {
                client
                    .start_task(pb::StartTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        etag: String::new(),
                    })
                    .await
            }
            Move::Submit => {
                client
                    .submit_task(pb::SubmitTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        note: String::new(),
                        etag: String::new(),
                    })
                    .await
            }
            Move::Approve => {
                client
                    .approve_task(pb::ApproveTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        comment: "looks good".into(),
                        etag: String::new(),
                    })
                    .await
            }
            Move::Reject => {
                client
                    .reject_task(pb::RejectTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        reason: "needs tests".into(),
                        etag: String::new(),
                    })
                    .await
            }
            Move::Complete => {
                client
                    .complete_task(pb::CompleteTaskRequest {
                        tenant_id,
                        project_id,
                        task_id,
                        etag: String::new(),
                    })
                    .await
            }
        };
        answer.map(tonic::Response::into_inner)
    }

    /// Who makes `by` in the normal course of work.
    pub fn actor_for(&self, by: Move) -> UserId {
        match by {
            Move::Assign | Move::Complete => self.lead,
            Move::Start | Move::Submit => self.worker,
            Move::Approve | Move::Reject => self.approver,
        }
    }

    pub async fn get(&self, app: &TestApp, task: &pb::Task) -> pb::Task {
        self.lead(app)
            .get_task(pb::GetTaskRequest {
                tenant_id: self.tenant.to_string(),
                project_id: task.project_id.clone(),
                task_id: task.id.clone(),
            })
            .await
            .expect("get task")
            .into_inner()
    }

    pub async fn approvals(&self, app: &TestApp, task: &pb::Task) -> Vec<pb::Approval> {
        self.lead(app)
            .list_approvals(pb::ListApprovalsRequest {
                tenant_id: self.tenant.to_string(),
                project_id: task.project_id.clone(),
                task_id: task.id.clone(),
                page_size: 200,
                page_token: String::new(),
            })
            .await
            .expect("list approvals")
            .into_inner()
            .approvals
    }
}

pub fn state(state: TaskState) -> i32 {
    pb::TaskState::from(state) as i32
}
