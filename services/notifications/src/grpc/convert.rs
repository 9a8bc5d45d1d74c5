//! Domain -> proto, and the inbox's page cursor.

use keel_kernel::grpc::paging::Cursor;
use keel_kernel::grpc::timestamp;
use keel_proto::notifications::v1 as pb;

use crate::repo::notifications::Notification;

impl From<&Notification> for pb::Notification {
    fn from(n: &Notification) -> Self {
        pb::Notification {
            notification_id: n.id.to_string(),
            tenant_id: n.tenant_id.to_string(),
            user_id: n.user_id.to_string(),
            category: pb::Category::from(n.category) as i32,
            event_type: n.event_type.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            link: n.link.clone(),
            create_time: Some(timestamp(n.created_at)),
            read_time: n.read_at.map(timestamp),
        }
    }
}

/// The keyset position of a user's inbox, newest first: the last sequence sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before(pub i64);

impl Cursor for Before {
    const KIND: &'static str = "n";
    fn write(&self) -> String {
        self.0.to_string()
    }
    fn read(text: &str) -> Option<Self> {
        text.parse().ok().map(Before)
    }
}
