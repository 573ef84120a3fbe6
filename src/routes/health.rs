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
use crate::state::{AppState, Readiness};

/// 200 while the process serves.
pub async fn live() -> HttpResponse {
    plain(StatusCode::OK, "ok\n")
}

/// 200 when visits can be persisted; 503 with the reason otherwise.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let readiness = state.readiness();
    let status = match readiness {
        Readiness::Ready => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    plain(status, format!("{readiness}\n"))
}
