//! How failures become HTTP answers, and how errors are written to logs.
//!
//! Error bodies are short plain text: a visitor or a probe needs to know
//! *that* something failed, the log needs to know *why*, so the cause chain
//! is logged once where the error happens and never sent to the client.

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::store::VisitError;

/// Formats an error with its causes: `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

impl ResponseError for VisitError {
    fn status_code(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            VisitError::NotRecorded(_) => {
                "visit not recorded: storage unavailable, try again later\n"
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
