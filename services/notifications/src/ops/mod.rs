//! Use cases shared by the consumers and the jobs.

pub mod route;
pub mod send;

use std::sync::Arc;

use keel_kernel::clock::SharedClock;
use keel_kernel::outbox::Outbox;

use crate::mail::Mailer;
use crate::peers::Peers;
use crate::render::Renderer;
use crate::settings::Settings;

/// What routing and sending share: built once in `app.rs`.
#[derive(Clone)]
pub struct Deliverer {
    pub renderer: Arc<Renderer>,
    pub peers: Peers,
    pub mailer: Mailer,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
}
