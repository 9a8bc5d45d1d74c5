//! TODO(kernel-v2): stand-ins for `keel_kernel::clock` and `keel_kernel::idempotency`, with their
//! announced signatures, until main has them; removed at the merge.

pub mod clock {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};

    pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
        fn now(&self) -> DateTime<Utc>;
    }
    pub type SharedClock = Arc<dyn Clock>;

    #[derive(Debug)]
    struct System;
    impl Clock for System {
        fn now(&self) -> DateTime<Utc> {
            Utc::now()
        }
    }

    pub fn system() -> SharedClock {
        Arc::new(System)
    }
}

pub mod idempotency {
    use keel_kernel::{Error, RequestMeta, TenantId};
    use sqlx::PgConnection;

    pub enum Scope {
        Tenant(TenantId),
    }

    pub struct IdempotencyKey;

    pub enum Claim<R> {
        New,
        Replay(R),
    }

    impl IdempotencyKey {
        pub fn from_request(
            _method: &'static str,
            _scope: Scope,
            _explicit: &str,
            _meta: &RequestMeta,
            _request: &impl prost::Message,
        ) -> Result<Option<IdempotencyKey>, Error> {
            Ok(None)
        }

        pub async fn claim<R: prost::Message + Default>(
            &self,
            _conn: &mut PgConnection,
        ) -> Result<Claim<R>, Error> {
            Ok(Claim::New)
        }

        pub async fn complete(
            &self,
            _conn: &mut PgConnection,
            _response: &impl prost::Message,
        ) -> Result<(), Error> {
            Ok(())
        }

        pub async fn release(&self, _conn: &mut PgConnection) -> Result<(), Error> {
            Ok(())
        }
    }
}
