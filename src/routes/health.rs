//! `GET /healthz` (liveness) and `GET /readyz` (readiness).
//!
//! Liveness answers as long as the process serves HTTP and never touches
//! the disk: a full or read-only volume must make the pod unready, not get
//! it restarted in a loop. Readiness reflects the last durable write (or
//! the start-up probe), so a pod that cannot persist visits stops getting
//! them until a write succeeds again.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::plain;
use crate::faults::Faults;
use crate::state::AppState;
use crate::store::Health;

/// 200 while the process serves.
pub async fn live() -> HttpResponse {
    plain(StatusCode::OK, "ok\n")
}

/// 200 when visits can be persisted; 503 with the reason otherwise.
pub async fn ready(state: web::Data<AppState>, faults: Option<web::Data<Faults>>) -> HttpResponse {
    if faults.is_some_and(|f| f.unready()) {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: fault injected\n",
        );
    }
    match state.committer.health() {
        Health::Ready => plain(StatusCode::OK, "ready\n"),
        Health::NotReady(reason) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}
