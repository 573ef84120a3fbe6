use std::collections::HashSet;

use test_support::{count_on_disk, load, spawn_app, visit_number};

#[tokio::test]
async fn a_visit_counts_and_is_on_disk_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;

    let response = app.get("/").await;

    assert_eq!(response.status(), 200);
    assert_eq!(visit_number(&response), 1);
    // Read the file right away, before anything else could flush it.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("visits")).unwrap(),
        "1\n"
    );
    let body = response.text().await.unwrap();
    assert!(body.contains("#1"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn head_probes_visits_time_and_metrics_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    assert_eq!(app.visit().await, 1);

    for path in [
        "/healthz",
        "/readyz",
        "/visits",
        "/visits/cluster",
        "/metrics",
        "/api/time",
        "/nope",
        "/favicon.ico",
    ] {
        let response = app.get(path).await;
        assert!(
            response.status().as_u16() < 500,
            "{path} answered {}",
            response.status()
        );
        let head = app
            .client
            .head(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert!(head.status().as_u16() < 500);
    }
    let head = app
        .client
        .head(format!("{}/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().get("x-visit-number").is_none());
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(m, format!("{}/", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} /");
    }

    assert_eq!(count_on_disk(dir.path()), 1);
    assert_eq!(app.reported_count().await, 1);
    assert_eq!(app.visit().await, 2, "the next visit is the second");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_times_fifty_visits_give_exactly_3200_distinct_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    let numbers = load(&app.address, 64, 50).await;

    let mut all = HashSet::new();
    for n in numbers {
        assert!(all.insert(n), "visit number {n} was given twice");
    }
    assert_eq!(all.len(), 3200);
    assert_eq!(
        all,
        (1..=3200).collect::<HashSet<u64>>(),
        "numbers have no gaps"
    );
    assert_eq!(count_on_disk(dir.path()), 3200);
    assert_eq!(app.reported_count().await, 3200);
    app.stop().await;
}

#[tokio::test]
async fn visits_answers_plain_text_or_json_for_this_instance() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    app.visit().await;
    app.visit().await;

    let plain = app.get("/visits").await;
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(plain.text().await.unwrap(), "2\n");

    let json = app.get_json("/visits").await;
    assert_eq!(
        json,
        serde_json::json!({"visits": 2, "instance": "test-instance"})
    );
    app.stop().await;
}

#[tokio::test]
async fn without_peers_the_cluster_view_is_this_instance_alone() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    app.visit().await;
    let view = app.get_json("/visits/cluster").await;
    assert_eq!(view["total"], 1);
    assert_eq!(view["pods"][0]["instance"], "test-instance");
    assert_eq!(view["unreachable"], serde_json::json!([]));
    app.stop().await;
}

#[tokio::test]
async fn the_favicon_is_an_svg_cached_for_a_year_and_never_a_visit() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    assert_eq!(app.visit().await, 1);

    for _ in 0..3 {
        let response = app.get("/favicon.ico").await;
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "image/svg+xml");
        let cache = headers["cache-control"].to_str().unwrap();
        assert!(
            cache.contains("max-age=31536000") && cache.contains("immutable"),
            "{cache}"
        );
        assert!(headers.get("x-visit-number").is_none());
        let body = response.text().await.unwrap();
        assert!(body.starts_with("<svg") && body.trim_end().ends_with("</svg>"));
    }

    assert_eq!(app.reported_count().await, 1, "the favicon did not count");
    assert_eq!(count_on_disk(dir.path()), 1);
    let page = app.get("/").await;
    assert_eq!(
        page.headers()["cache-control"],
        "no-store",
        "only the icon may be cached"
    );
    app.stop().await;
}
