//! `GET /api/time`: the current time in the configured zone, as JSON.

use actix_web::{HttpResponse, web};

use crate::clock::Now;
use crate::startup::AppState;

/// The time, its zone and offset, and Unix milliseconds.
pub async fn now(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Now::in_zone(state.timezone).api())
}
