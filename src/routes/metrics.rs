//! `GET /metrics`: the Prometheus text exposition.

use actix_web::{HttpResponse, web};

use crate::metrics::Metrics;
use crate::state::AppState;

/// Every metric of this instance.
pub async fn export(metrics: web::Data<Metrics>, state: web::Data<AppState>) -> HttpResponse {
    state.committer.observe_write_in_flight();
    match metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .insert_header(("content-type", "text/plain; version=0.0.4; charset=utf-8"))
            .body(text),
        Err(error) => {
            tracing::error!(error = %crate::errors::error_chain(&error), "failed to render metrics");
            HttpResponse::InternalServerError().body("metrics unavailable\n")
        }
    }
}
