//! `/faults`: switching injected faults on and off (only registered when
//! fault injection is enabled). Every change is logged at warn and counted
//! in `moscow_time_fault_changes_total{fault,action}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::plain;
use crate::faults::Faults;
use crate::metrics::Metrics;

/// A fault that `/faults/{fault}` switches on (`PUT`) and off (`DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every durable write fails as on a full disk.
    Disk,
    /// Readiness fails.
    Unready,
    /// Page views are delayed (`PUT` takes `?ms=N`).
    Latency,
    /// Every durable write blocks until cleared, as on a hung volume.
    Stall,
}

impl Fault {
    /// Every fault, in the order errors list them.
    pub const ALL: [Fault; 4] = [Fault::Disk, Fault::Unready, Fault::Latency, Fault::Stall];

    /// The name in the path and in the metric's `fault` label.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Disk => "disk",
            Fault::Unready => "unready",
            Fault::Latency => "latency",
            Fault::Stall => "stall",
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(name: &str) -> Result<Self, UnknownFault> {
        Fault::ALL
            .into_iter()
            .find(|fault| fault.name() == name)
            .ok_or_else(|| UnknownFault(name.to_owned()))
    }
}

/// A path naming no fault: 404, with the faults there are.
#[derive(Debug, thiserror::Error)]
#[error("no fault named {0:?}; the faults are {known}", known = Fault::ALL.map(Fault::name).join(", "))]
pub struct UnknownFault(String);

impl actix_web::ResponseError for UnknownFault {
    fn error_response(&self) -> HttpResponse {
        plain(StatusCode::NOT_FOUND, format!("{self}\n"))
    }
}

/// Registers the fault routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/faults").route(web::get().to(list)))
        .service(
            web::resource("/faults/{fault}")
                .route(web::put().to(set))
                .route(web::delete().to(clear)),
        );
}

async fn list(faults: web::Data<Faults>) -> HttpResponse {
    HttpResponse::Ok().json(faults.active())
}

async fn set(
    req: HttpRequest,
    path: web::Path<String>,
    faults: web::Data<Faults>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, UnknownFault> {
    let fault = path.parse()?;
    match fault {
        Fault::Disk => faults.set_disk(true),
        Fault::Unready => faults.set_unready(true),
        Fault::Stall => faults.set_stall(true),
        Fault::Latency => {
            if let Err(reason) = faults.set_latency_ms(latency_ms(&req)) {
                return Ok(plain(StatusCode::BAD_REQUEST, format!("{reason}\n")));
            }
        }
    }
    Ok(changed(&faults, &metrics, fault, true))
}

async fn clear(
    path: web::Path<String>,
    faults: web::Data<Faults>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, UnknownFault> {
    let fault = path.parse()?;
    match fault {
        Fault::Disk => faults.set_disk(false),
        Fault::Unready => faults.set_unready(false),
        Fault::Latency => faults.clear_latency(),
        Fault::Stall => faults.set_stall(false),
    }
    Ok(changed(&faults, &metrics, fault, false))
}

/// The query of `PUT /faults/latency`.
#[derive(Debug, serde::Deserialize)]
struct LatencyQuery {
    /// The delay in ms.
    ms: u64,
}

/// The `ms` query parameter; missing or not a whole number is 0, which the
/// bound refuses too (with the bound's message, not the parser's).
fn latency_ms(req: &HttpRequest) -> u64 {
    web::Query::<LatencyQuery>::from_query(req.query_string()).map_or(0, |q| q.ms)
}

fn changed(faults: &Faults, metrics: &Metrics, fault: Fault, on: bool) -> HttpResponse {
    let action = if on { "set" } else { "cleared" };
    let fault = fault.name();
    metrics
        .fault_changes
        .with_label_values(&[fault, action])
        .inc();
    let active = faults.active();
    tracing::warn!(fault, action, ?active, "fault injection changed");
    HttpResponse::Ok().json(active)
}
