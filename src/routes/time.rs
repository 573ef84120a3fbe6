//! `GET /api/time`: the current time in the configured zone, as JSON.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::clock::Now;
use crate::state::AppState;

/// The JSON answer of `GET /api/time`.
#[derive(Debug, Serialize)]
pub struct ApiTime {
    /// RFC 3339 with the zone's offset, e.g. `2026-11-22T05:13:47.123+03:00`.
    pub time: String,
    /// The IANA zone name.
    pub timezone: &'static str,
    /// The offset from UTC, e.g. `+03:00`.
    pub utc_offset: String,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

impl From<&Now> for ApiTime {
    fn from(now: &Now) -> Self {
        ApiTime {
            time: now.rfc3339(),
            timezone: now.local.timezone().name(),
            utc_offset: now.utc_offset(),
            unix_ms: now.unix_ms(),
        }
    }
}

/// The time, its zone and offset, and Unix milliseconds.
pub async fn now(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ApiTime::from(&Now::in_zone(state.timezone)))
}
