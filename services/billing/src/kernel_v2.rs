//! TODO(kernel-v2): stand-in with the signatures of the kernel's clock, jobs and idempotency
//! modules until they land on main; deleted at the merge.
#![allow(dead_code, unused_variables, clippy::unused_async)]

pub mod clock {
    use chrono::{DateTime, Utc};
    pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
        fn now(&self) -> DateTime<Utc>;
    }
    pub type SharedClock = std::sync::Arc<dyn Clock>;
    #[derive(Debug)]
    struct System;
    impl Clock for System {
        fn now(&self) -> DateTime<Utc> {
            Utc::now()
        }
    }
    pub fn system() -> SharedClock {
        std::sync::Arc::new(System)
    }
}

pub mod jobs {
    use chrono::{DateTime, Utc};
    use keel_kernel::{Error, TenantId};
    pub struct NewJob;
    impl NewJob {
        pub fn new(kind: &'static str, key: impl Into<String>, run_at: DateTime<Utc>) -> NewJob {
            NewJob
        }
        pub fn tenant(self, tenant: TenantId) -> NewJob {
            self
        }
        pub fn payload<T: serde::Serialize>(self, payload: &T) -> Result<NewJob, Error> {
            Ok(self)
        }
    }
    pub async fn schedule(conn: &mut sqlx::PgConnection, job: NewJob) -> Result<bool, Error> {
        Ok(true)
    }
    pub struct Job {
        pub id: i64,
        pub kind: String,
        pub key: String,
    }
    impl Job {
        pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
            Err(Error::internal(anyhow::anyhow!("stub")))
        }
    }
    pub type JobTx = keel_kernel::consumer::EventTx;
    pub trait JobHandler: Send + Sync + 'static {
        fn run<'a>(
            &'a self,
            tx: &'a mut JobTx,
            job: &'a Job,
        ) -> futures::future::BoxFuture<'a, Result<(), Error>>;
    }
}

pub mod idempotency {
    use keel_kernel::{Error, RequestMeta, TenantId};
    pub enum Scope {
        Tenant(TenantId),
        Principal(String),
    }
    pub struct IdempotencyKey;
    pub enum Claim<R> {
        New,
        Replay(R),
    }
    impl IdempotencyKey {
        pub fn from_request(
            method: &'static str,
            scope: Scope,
            explicit: &str,
            meta: &RequestMeta,
            request: &impl prost::Message,
        ) -> Result<Option<IdempotencyKey>, Error> {
            Ok(None)
        }
        pub async fn claim<R: prost::Message + Default>(
            &self,
            conn: &mut sqlx::PgConnection,
        ) -> Result<Claim<R>, Error> {
            Ok(Claim::New)
        }
        pub async fn complete(
            &self,
            conn: &mut sqlx::PgConnection,
            response: &impl prost::Message,
        ) -> Result<(), Error> {
            Ok(())
        }
    }
}
