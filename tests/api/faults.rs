//! Opt-in fault injection: absent unless enabled; when enabled, each fault
//! breaks exactly what it says, through the real code paths, and clears.

use std::time::{Duration, Instant};

use test_support::{
    Server, WRITE_PROBE_FAILED, binary_command, count_on_disk, log_write_probes, metric, wait_until,
};

fn fault_server(dir: &std::path::Path) -> Server {
    let mut cmd = binary_command(dir);
    log_write_probes(&mut cmd).arg("--fault-injection");
    Server::start_command(cmd)
}

fn send(server: &Server, method: &str, path: &str) -> test_support::Response {
    let request = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    test_support::Conn::connect(server.addr)
        .and_then(|mut conn| conn.send(request.as_bytes()))
        .expect("the server answers")
}

#[test]
fn without_the_setting_the_fault_routes_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.get("/faults").status, 404);
    assert_eq!(send(&server, "PUT", "/faults/disk").status, 404);
    assert_eq!(server.visit(), 1);
}

#[test]
fn a_disk_fault_refuses_visits_fails_readiness_and_clears_with_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let server = fault_server(dir.path());
    assert_eq!(server.visit(), 1);

    assert_eq!(send(&server, "PUT", "/faults/disk").status, 200);
    let refused = server.get("/");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(server.get("/readyz").status, 503);
    assert_eq!(
        server.get("/healthz").status,
        200,
        "liveness is never affected"
    );
    assert!(server.metric("moscow_time_persist_errors_total") >= 1.0);
    assert!(server.get("/faults").text().contains("\"disk\":true"));
    // The writer's own recovery probe fails too: still unready once a probe ran.
    assert!(
        server.wait_for_log(WRITE_PROBE_FAILED, Duration::from_secs(30)),
        "no write probe ran"
    );
    assert_eq!(server.get("/readyz").status, 503);

    assert_eq!(send(&server, "DELETE", "/faults/disk").status, 200);
    assert!(wait_until(Duration::from_secs(10), || server
        .get("/readyz")
        .status
        == 200));
    assert_eq!(server.visit(), 2, "the refused visit did not count; no gap");
    let changes = server.get("/metrics").text();
    for action in ["set", "cleared"] {
        let series =
            format!("moscow_time_fault_changes_total{{action=\"{action}\",fault=\"disk\"}}");
        assert_eq!(metric(&changes, &series), Some(1.0), "{series}");
    }
}

/// A hung volume, injected: every durable write blocks before its fsync.
/// Visits are answered 503 (none hangs: the client would give up after
/// 30 s and fail the test), readiness fails naming the write, liveness
/// stays up; once cleared, the held write completes and counting goes on
/// with nothing acknowledged lost.
#[test]
fn a_stall_answers_visits_503_fails_readiness_and_clears_losing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(dir.path());
    cmd.args(["--fault-injection", "--write-timeout-ms", "500"]);
    let server = Server::start_command(cmd);
    assert_eq!(server.visit(), 1);

    assert_eq!(send(&server, "PUT", "/faults/stall").status, 200);
    assert!(server.get("/faults").text().contains("\"stall\":true"));
    let held = server.get("/");
    assert_eq!(held.status, 503, "{}", held.text());
    assert!(
        held.text().contains("did not answer in time"),
        "{}",
        held.text()
    );
    assert_eq!(held.header("retry-after"), Some("1"));
    assert!(
        wait_until(Duration::from_secs(10), || {
            let ready = server.get("/readyz");
            ready.status == 503 && ready.text().contains("durable write has been in flight")
        }),
        "readiness never named the stalled write: {}",
        server.get("/readyz").text()
    );
    // Refused at once now, and never written: the queue does not grow.
    assert_eq!(server.get("/").status, 503);
    let stuck_for = server.metric("moscow_time_persist_in_flight_seconds");
    assert!(stuck_for > 0.5, "the stuck write shows {stuck_for} s");
    assert_eq!(
        server.get("/healthz").status,
        200,
        "liveness is never affected"
    );
    assert_eq!(
        count_on_disk(dir.path()),
        1,
        "nothing written while stalled"
    );

    assert_eq!(send(&server, "DELETE", "/faults/stall").status, 200);
    assert!(
        server.wait_ready(Duration::from_secs(10)),
        "not ready after the stall"
    );
    assert_eq!(
        server.visit(),
        3,
        "the visit held in the stalled write counts, the one refused at once does not"
    );
    assert_eq!(count_on_disk(dir.path()), 3);
    assert_eq!(server.metric("moscow_time_visits_late_total"), 1.0);
    assert_eq!(server.metric("moscow_time_persist_in_flight_seconds"), 0.0);
}

#[test]
fn an_unready_fault_fails_only_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let server = fault_server(dir.path());
    send(&server, "PUT", "/faults/unready");
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("fault injected"));
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.visit(), 1, "visits still count");
    send(&server, "DELETE", "/faults/unready");
    assert_eq!(server.get("/readyz").status, 200);
}

#[test]
fn latency_delays_page_views_and_bad_values_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = fault_server(dir.path());
    for bad in ["", "?ms=0", "?ms=10001", "?ms=abc", "?ms=-5"] {
        let answer = send(&server, "PUT", &format!("/faults/latency{bad}"));
        assert_eq!(answer.status, 400, "{bad:?}");
    }
    assert!(server.get("/faults").text().contains("\"latency_ms\":0"));
    // Wide margin: a probe answers well within the page views' delay.
    let delay = Duration::from_millis(2000);
    let set = format!("/faults/latency?ms={}", delay.as_millis());
    assert_eq!(send(&server, "PUT", &set).status, 200);
    let started = Instant::now();
    server.visit();
    assert!(started.elapsed() >= delay, "the page view was delayed");
    let probe = Instant::now();
    server.get("/healthz");
    assert!(probe.elapsed() < delay, "probes are not delayed");
    send(&server, "DELETE", "/faults/latency");
    assert!(server.get("/faults").text().contains("\"latency_ms\":0"));
}

#[test]
fn an_unknown_fault_is_not_found_names_the_faults_there_are_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = fault_server(dir.path());
    let before = server.get("/faults").text();
    for method in ["PUT", "DELETE"] {
        let answer = send(&server, method, "/faults/cpu");
        assert_eq!(answer.status, 404, "{method}");
        assert_eq!(
            answer.text(),
            "no fault named \"cpu\"; the faults are disk, unready, latency, stall\n",
            "{method}"
        );
    }
    assert_eq!(server.get("/faults").text(), before);
    assert_eq!(server.visit(), 1);
    let metrics = server.get("/metrics").text();
    assert!(
        !metrics.contains("moscow_time_fault_changes_total{"),
        "nothing changed: {metrics}"
    );
}
