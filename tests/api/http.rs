use chrono::Utc;

use test_support::spawn_app;

#[tokio::test]
async fn api_time_agrees_with_utc_plus_three_for_moscow() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;

    let before = Utc::now().timestamp_millis();
    let json: serde_json::Value = app.get("/api/time").await.json().await.unwrap();
    let after = Utc::now().timestamp_millis();

    assert_eq!(json["timezone"], "Europe/Moscow");
    assert_eq!(json["utc_offset"], "+03:00");
    let ms = json["unix_ms"].as_i64().unwrap();
    assert!(before <= ms && ms <= after, "{before} <= {ms} <= {after}");
    let time = chrono::DateTime::parse_from_rfc3339(json["time"].as_str().unwrap()).unwrap();
    assert_eq!(time.offset().local_minus_utc(), 3 * 3600);
    assert_eq!(time.timestamp_millis(), ms);
    let page = app.get("/").await.text().await.unwrap();
    assert!(page.contains("Europe/Moscow · UTC+03:00"), "{page}");
    assert!(
        page.contains(&time.format("\">%H:").to_string()),
        "the page shows the same Moscow hour"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_page_sends_a_strict_csp_and_no_caching() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    let response = app.get("/").await;
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();

    let csp = header("content-security-policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("style-src 'sha256-"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("*"),
        "{csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert!(header("content-type").starts_with("text/html"));
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("src=") && !body.contains("href="),
        "the page loads no external assets"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_paths_answer_404_and_wrong_methods_405_short_and_plain() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;

    let missing = app.get("/no/such/page").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
    assert_eq!(missing.headers()["cache-control"], "no-store");
    assert!(
        missing.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(missing.text().await.unwrap().len() < 64);

    let wrong = app
        .client
        .post(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "GET, HEAD");
    assert!(wrong.text().await.unwrap().len() < 64);
    assert_eq!(app.reported_count().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_uri_or_header_section_is_refused_and_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;

    let long = format!("{}/?q={}", app.address, "a".repeat(9000));
    let refused = app.client.get(&long).send().await.unwrap();
    assert_eq!(refused.status(), 414);
    assert_eq!(
        refused.headers()["x-content-type-options"],
        "nosniff",
        "refused answers carry the headers too"
    );
    let big = "b".repeat(8000);
    let response = app
        .client
        .get(format!("{}/", app.address))
        .header("x-one", &big)
        .header("x-two", &big)
        .header("x-three", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);

    assert_eq!(app.reported_count().await, 0);
    assert_eq!(test_support::count_on_disk(dir.path()), 0);
    app.stop().await;
}

#[tokio::test]
async fn probes_answer_ok_and_ready() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    let live = app.get("/healthz").await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.text().await.unwrap(), "ok\n");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
    app.stop().await;
}
