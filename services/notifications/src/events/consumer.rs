//! The consumer of every source context: interpret the event, route what it says.

use futures::future::BoxFuture;
use keel_kernel::Error;
use keel_kernel::consumer::{Event, EventHandler, EventTx};

use super::interpret;
use crate::ops::Deliverer;

pub struct Sources {
    pub deliverer: Deliverer,
}

impl Sources {
    async fn apply(&self, tx: &mut EventTx, event: &Event) -> Result<(), Error> {
        let Some(intent) = interpret::interpret(tx, event).await? else {
            return Ok(());
        };
        self.deliverer.route(tx, event, intent).await
    }
}

impl EventHandler for Sources {
    fn handle<'a>(
        &'a self,
        tx: &'a mut EventTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(tx, event))
    }
}
