//! `/faults`: switching injected faults on and off (only registered when
//! fault injection is enabled). Every change is logged at warn and counted
//! in `moscow_time_fault_changes_total{fault,action}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::plain;
use crate::faults::Faults;
use crate::metrics::Metrics;

/// Registers the fault routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/faults").route(web::get().to(list)))
        .service(
            web::resource("/faults/disk")
                .route(web::put().to(|f, m| toggle(f, m, "disk", true)))
                .route(web::delete().to(|f, m| toggle(f, m, "disk", false))),
        )
        .service(
            web::resource("/faults/unready")
                .route(web::put().to(|f, m| toggle(f, m, "unready", true)))
                .route(web::delete().to(|f, m| toggle(f, m, "unready", false))),
        )
        .service(
            web::resource("/faults/latency")
                .route(web::put().to(set_latency))
                .route(web::delete().to(|f, m| toggle(f, m, "latency", false))),
        );
}

async fn list(faults: web::Data<Faults>) -> HttpResponse {
    HttpResponse::Ok().json(faults.active())
}

async fn toggle(
    faults: web::Data<Faults>,
    metrics: web::Data<Metrics>,
    fault: &'static str,
    on: bool,
) -> HttpResponse {
    match fault {
        "disk" => faults.set_disk(on),
        "unready" => faults.set_unready(on),
        _ => faults.clear_latency(),
    }
    changed(&faults, &metrics, fault, on)
}

async fn set_latency(
    req: HttpRequest,
    faults: web::Data<Faults>,
    metrics: web::Data<Metrics>,
) -> HttpResponse {
    // A missing or non-numeric `ms` is 0, which the bound refuses too.
    let ms =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("ms").and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
    match faults.set_latency_ms(ms) {
        Ok(()) => changed(&faults, &metrics, "latency", true),
        Err(reason) => plain(StatusCode::BAD_REQUEST, format!("{reason}\n")),
    }
}

fn changed(faults: &Faults, metrics: &Metrics, fault: &'static str, on: bool) -> HttpResponse {
    let action = if on { "set" } else { "cleared" };
    metrics
        .fault_changes
        .with_label_values(&[fault, action])
        .inc();
    let active = faults.active();
    tracing::warn!(fault, action, ?active, "fault injection changed");
    HttpResponse::Ok().json(active)
}
