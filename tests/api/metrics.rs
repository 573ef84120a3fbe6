use std::io::Write;
use std::process::{Command, Stdio};

use test_support::{count_on_disk, metric, skip, spawn_app};

fn sample(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no sample {series}"))
}

#[tokio::test]
async fn metrics_follow_the_file_and_count_requests_by_route() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("visits"), "40\n").unwrap();
    let app = spawn_app(dir.path()).await;
    for _ in 0..2 {
        app.visit().await;
    }
    app.get("/healthz").await;
    app.get("/wp-admin/setup.php").await;
    app.get("/.env").await;

    let text = app.get("/metrics").await.text().await.unwrap();

    assert_eq!(
        sample(&text, "moscow_time_visits_total"),
        count_on_disk(dir.path()) as f64
    );
    assert_eq!(sample(&text, "moscow_time_visits_total"), 42.0);
    assert_eq!(
        sample(
            &text,
            r#"moscow_time_http_requests_total{method="GET",route="/",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"moscow_time_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        2.0,
        "unknown paths share one label value"
    );
    assert!(!text.contains("wp-admin") && !text.contains(".env"));
    assert_eq!(sample(&text, "moscow_time_persist_errors_total"), 0.0);
    assert!(sample(&text, "moscow_time_persist_batch_size_count") >= 1.0);
    assert!(text.contains("moscow_time_build_info{version=\""));
    assert!(text.contains("process_resident_memory_bytes"));
    app.stop().await;
}

/// `promtool check metrics` must accept the output. The test command
/// installs promtool and sets `REQUIRE_PRIVILEGED=1`, under which a missing
/// promtool fails the test; elsewhere it skips only this check, loudly.
#[tokio::test]
async fn promtool_accepts_the_metrics_output() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    app.visit().await;
    let text = app.get("/metrics").await.text().await.unwrap();
    app.stop().await;

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            skip(
                "promtool_accepts_the_metrics_output",
                &format!("promtool not runnable ({e}); apt-get install prometheus"),
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool rejected the metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
