//! `GET /metrics`: the Prometheus text exposition.

use actix_web::{HttpResponse, web};

use crate::startup::AppState;

/// Every metric of this instance.
pub async fn export(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .insert_header(("content-type", "text/plain; version=0.0.4; charset=utf-8"))
            .body(text),
        Err(error) => {
            tracing::error!(error = %crate::error::error_chain(&error), "failed to render metrics");
            HttpResponse::InternalServerError().body("metrics unavailable\n")
        }
    }
}
