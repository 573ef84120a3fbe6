//! `GET /visits` and `GET /visits/cluster`: counts, without counting.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::plain;
use crate::cluster::InstanceCount;
use crate::state::AppState;

/// This instance's count: `N\n`, or JSON when the client accepts it.
pub async fn own(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let visits = state.committer.count();
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        HttpResponse::Ok().json(InstanceCount {
            visits,
            instance: state.instance.clone(),
        })
    } else {
        plain(StatusCode::OK, format!("{visits}\n"))
    }
}

/// Every instance's count and the total (JSON).
pub async fn cluster(state: web::Data<AppState>) -> HttpResponse {
    let view = state.peers.view(state.committer.count()).await;
    HttpResponse::Ok().json(view)
}
