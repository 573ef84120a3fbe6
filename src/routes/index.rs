//! `GET /`: the page, and the only route that counts a visit.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, web};

use super::plain;
use crate::clock::Now;
use crate::page::Pods;
use crate::state::AppState;
use crate::store::VisitError;

/// The header carrying this visit's number, for scripts and load tests.
pub const VISIT_NUMBER_HEADER: &str = "x-visit-number";

/// Counts one visit, durably, then shows the page with its number.
pub async fn visit(state: web::Data<AppState>) -> Result<HttpResponse, VisitError> {
    if let Some(delay) = state.faults.as_ref().and_then(|f| f.latency()) {
        tokio::time::sleep(delay).await;
    }
    let visit = state.committer.record_visit().await?;
    let view;
    let pods = if state.peers.enabled() {
        view = state.peers.page_view(visit).await;
        view.as_ref().map_or(Pods::NotYetAsked, Pods::Known)
    } else {
        Pods::Alone
    };
    let now = Now::in_zone(state.timezone);
    let body = state.page.render(&now, visit, pods);
    Ok(page_response(&state)
        .insert_header((VISIT_NUMBER_HEADER, visit))
        .body(body))
}

/// `HEAD /`: the page's headers, without counting a visit.
pub async fn head(state: web::Data<AppState>) -> HttpResponse {
    page_response(&state).finish()
}

fn page_response(state: &AppState) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            state.page.content_security_policy().clone(),
        ));
    builder
}

/// A visit that was not recorded is 503 with `Retry-After`: the visitor
/// may simply try again (another pod, or this one once the disk recovers).
impl ResponseError for VisitError {
    fn status_code(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            VisitError::NotRecorded(_) => {
                "visit not recorded: storage unavailable, try again later\n"
            }
            VisitError::TimedOut(_) | VisitError::Stalled(_) => {
                "visit not confirmed: storage did not answer in time, try again later\n"
            }
            VisitError::ShuttingDown => "visit not recorded: shutting down, try again\n",
        };
        let mut response = plain(self.status_code(), body);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
}
