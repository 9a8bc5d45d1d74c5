//! The operator's view of a service's outbox on the admin port: `GET /outbox` answers how many
//! events wait to be published, how old the oldest one is, and how many have failed to publish
//! at least once. `/metrics` has the backlog as a gauge; the age of the oldest row is what says
//! whether the relay is stuck, and only the table knows it. Guarded like the dead-letter
//! endpoints (see [`OperatorAccess`]); `keelctl outbox status` reads it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::admin::{OperatorAccess, admin_error};

#[derive(Clone)]
struct OutboxState {
    service: String,
    pool: sqlx::PgPool,
    access: Arc<OperatorAccess>,
}

/// The `/outbox` route over this service's `outbox` table.
pub fn outbox_routes(service: &str, pool: sqlx::PgPool, access: OperatorAccess) -> axum::Router {
    axum::Router::new()
        .route("/outbox", get(outbox_status))
        .with_state(OutboxState {
            service: service.to_owned(),
            pool,
            access: Arc::new(access),
        })
}

/// What `/outbox` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxStatus {
    pub service: String,
    /// Events written but not yet published.
    pub backlog: i64,
    /// Seconds since the oldest unpublished event was written; absent when the backlog is empty.
    pub oldest_age_seconds: Option<f64>,
    /// Unpublished events whose publishing has failed at least once.
    pub retrying: i64,
}

/// Read the outbox's backlog from `pool` (the `outbox_unpublished` partial index keeps this cheap).
pub async fn outbox_status_of(
    service: &str,
    pool: &sqlx::PgPool,
) -> Result<OutboxStatus, crate::Error> {
    let (backlog, oldest_age_seconds, retrying): (i64, Option<f64>, i64) = sqlx::query_as(
        "SELECT count(*), \
                extract(epoch FROM now() - min(created_at))::float8, \
                count(*) FILTER (WHERE attempts > 0) \
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(OutboxStatus {
        service: service.to_owned(),
        backlog,
        oldest_age_seconds,
        retrying,
    })
}

async fn outbox_status(State(state): State<OutboxState>, headers: http::HeaderMap) -> Response {
    if let Err(err) = state.access.check(&headers).await {
        return admin_error(err);
    }
    match outbox_status_of(&state.service, &state.pool).await {
        Ok(status) => Json(json!(status)).into_response(),
        Err(err) => admin_error(err),
    }
}
