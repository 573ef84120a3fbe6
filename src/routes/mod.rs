//! The HTTP routes, one module per concern, and the table that wires them.
//!
//! Only `GET /` counts a visit (never `/favicon.ico`, which browsers ask for
//! on their own). Every route answers `HEAD` too (without
//! counting), other methods get 405 with an `Allow` header, and unknown
//! paths a short 404, so scanners learn nothing and count nothing.
//!
//! What an answer tells a client about a failure, decided once here: the
//! callers are anonymous, so an answer says *that* something failed and of
//! what kind, in a few words, and never a file path, a cause chain or an
//! internal detail. A refused visit says whether storage failed, was too
//! slow or the service is stopping; `/readyz` gives the store's reason
//! ([`StoreError::reason`](crate::store::StoreError::reason): the kind and
//! the system's own words, such as "No space left on device"); the page and
//! `/visits/cluster` say of a peer that it timed out, could not be
//! connected to, or answered with a status, next to the peer addresses
//! that view exists to show. The log has the rest, the whole cause chain
//! with paths, once, where the error happens.

pub mod faults;
mod health;
mod index;
mod metrics;
mod time;
mod visits;

pub use index::VISIT_NUMBER_HEADER;

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, Handler, HttpResponse, Responder, guard, web};

/// Registers every route on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(index::visit))
            .route(web::head().to(index::head))
            .default_service(web::to(method_not_allowed)),
    );
    read_only(cfg, "/visits", visits::own);
    read_only(cfg, "/visits/cluster", visits::cluster);
    read_only(cfg, "/api/time", time::now);
    read_only(cfg, "/healthz", health::live);
    read_only(cfg, "/readyz", health::ready);
    read_only(cfg, "/metrics", metrics::export);
    read_only(cfg, "/favicon.ico", favicon);
}

/// The page's icon, compiled in. It never changes within a release, so
/// browsers may keep it for a year; it is not a visit.
async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("image/svg+xml"),
        ))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
        .body(crate::page::FAVICON)
}

/// A resource answering GET and HEAD with the same handler (actix sends no
/// body for HEAD) and 405 for anything else.
fn read_only<F, Args>(cfg: &mut web::ServiceConfig, path: &str, handler: F)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    cfg.service(
        web::resource(path)
            .route(
                web::route()
                    .guard(guard::Any(guard::Get()).or(guard::Head()))
                    .to(handler),
            )
            .default_service(web::to(method_not_allowed)),
    );
}

async fn method_not_allowed() -> HttpResponse {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// A short plain-text answer.
pub fn plain(status: StatusCode, body: impl MessageBody + 'static) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ))
        .body(body)
}

/// The answer for paths that match no route.
pub async fn not_found() -> HttpResponse {
    plain(StatusCode::NOT_FOUND, "not found\n")
}
