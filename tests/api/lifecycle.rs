use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use moscow_time::test_hooks::WRITER_PANIC_AT;
use test_support::{
    PidsCgroup, Server, bare_binary_command, binary_command, client, count_on_disk, load,
    run_bounded, spawn_app, visit_number, wait_until_async,
};

#[tokio::test]
async fn the_count_survives_a_restart_on_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(dir.path()).await;
    for expected in 1..=3 {
        assert_eq!(app.visit().await, expected);
    }
    app.stop().await;

    let app = spawn_app(dir.path()).await;
    assert_eq!(app.reported_count().await, 3);
    assert_eq!(app.visit().await, 4);
    app.stop().await;
    assert_eq!(count_on_disk(dir.path()), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_sharing_a_folder_end_at_the_exact_sum() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Server::start(dir.path(), &["--instance", "a"]);
    let mut b = Server::start(dir.path(), &["--instance", "b"]);

    let (from_a, from_b) = tokio::join!(load(&a.address, 16, 40), load(&b.address, 16, 40));

    let all: HashSet<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(
        all.len(),
        1280,
        "no visit number was handed out twice across processes"
    );
    assert_eq!(all, (1..=1280).collect::<HashSet<u64>>());
    a.signal("TERM");
    b.signal("TERM");
    assert!(a.wait(Duration::from_secs(10)).success());
    assert!(b.wait(Duration::from_secs(10)).success());
    assert_eq!(count_on_disk(dir.path()), 1280);
}

#[test]
fn a_corrupt_visits_file_refuses_to_start_and_is_left_byte_for_byte_unchanged() {
    let mut huge = b"9".repeat(1 << 20);
    huge.push(b'\n');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"hello world\n".to_vec()),
        ("empty", Vec::new()),
        ("negative", b"-1\n".to_vec()),
        ("u64::MAX + 1", b"18446744073709551616\n".to_vec()),
        ("leading junk", b"x12\n".to_vec()),
        ("trailing junk", b"12 visits\n".to_vec()),
        ("huge", huge),
    ];
    for (name, content) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("visits");
        std::fs::write(&path, &content).unwrap();

        let output = run_bounded(binary_command(dir.path()), Duration::from_secs(30));

        assert!(!output.status.success(), "{name}: started anyway");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let problem = stderr
            .split("is corrupt: ")
            .nth(1)
            .and_then(|rest| rest.split(". It was left untouched").next())
            .unwrap_or_else(|| panic!("{name}: no problem stated: {stderr}"));
        assert_eq!(
            stderr.matches(problem).count(),
            1,
            "{name}: the problem is said exactly once: {stderr}"
        );
        assert!(
            stderr.contains("moscow-time set-count --force") && stderr.contains("diagnostic mode"),
            "{name}: the message says how to repair: {stderr}"
        );
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: message does not name the file: {stderr}"
        );
        assert!(stderr.contains("corrupt"), "{name}: {stderr}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            content,
            "{name}: the file was changed"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "visits")
            .collect();
        assert!(leftovers.is_empty(), "{name}: left {leftovers:?}");
    }
}

/// A pod's pids limit can leave no room for the writer thread: the binary
/// must then say so and exit 1, not panic or abort. The threads started
/// before the writer (tracing-appender's log writer, which panics when
/// refused) are a detail of the libraries, so the limit rises one task at a
/// time until the writer is the one refused; below that, no run may end by
/// a signal either.
#[test]
fn a_writer_thread_the_system_refuses_is_a_clear_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut earlier = Vec::new();
    for max in 1..=16 {
        let cgroup = PidsCgroup::new(max)
            .unwrap_or_else(|why| panic!("this test limits the binary's threads: {why}"));
        let output = run_bounded(
            cgroup.wrap(&binary_command(dir.path())),
            Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.signal(),
            None,
            "pids.max={max}: ended by a signal: {stderr}"
        );
        if !stderr.contains("writer thread") {
            assert!(!output.status.success(), "pids.max={max} started: {stderr}");
            earlier.push(format!("pids.max={max}: {}: {stderr}", output.status));
            continue;
        }
        assert_eq!(output.status.code(), Some(1), "pids.max={max}: {stderr}");
        assert!(
            stderr.starts_with("moscow-time: failed to start the visit writer thread: ")
                && stderr.contains("os error 11")
                && !stderr.contains("panicked"),
            "pids.max={max}: {stderr}"
        );
        assert_eq!(count_on_disk(dir.path()), 0, "nothing was counted");
        return;
    }
    panic!(
        "no pids limit up to 16 refused the writer thread:\n{}",
        earlier.join("\n")
    );
}

/// A writer that dies (a panic, made by the test hook in the second
/// durable write) takes the process down: the visit in that write is
/// refused, the cause is logged at once and again as the reason the process
/// stops, the exit status is 1 (the kubelet restarts it), and nothing was
/// counted after the first visit.
#[test]
fn a_writer_that_panics_stops_the_process_non_zero_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(dir.path());
    cmd.env(WRITER_PANIC_AT, "2");
    let mut server = Server::start_command(cmd);
    assert_eq!(server.visit(), 1);

    let refused = server.get("/");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("x-visit-number").is_none());
    let status = server.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{status}");

    let logs: Vec<serde_json::Value> = server
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    let cause = format!("{WRITER_PANIC_AT}=2");
    let died = logs
        .iter()
        .position(|log| {
            log["level"] == "ERROR"
                && log["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("the visit writer died"))
                && log["cause"].as_str().is_some_and(|c| c.contains(&cause))
        })
        .unwrap_or_else(|| panic!("no log line says the writer died, with the cause: {logs:#?}"));
    let stopped = logs
        .iter()
        .position(|log| {
            log["message"] == "moscow-time stopped with an error"
                && log["error"].as_str().is_some_and(|e| e.contains(&cause))
        })
        .unwrap_or_else(|| panic!("the process did not stop naming the cause: {logs:#?}"));
    assert!(died < stopped, "the death was said only at the end");
    assert_eq!(
        count_on_disk(dir.path()),
        1,
        "no visit counted after the panic"
    );
}

#[test]
fn bad_settings_stop_the_binary_with_a_message_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"timezone": "Europe/Moscow", "colour": "red"}"#).unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--timezone".into(), "Mars/Olympus".into()],
            "Mars/Olympus",
        ),
        (vec!["--port".into(), "70000".into()], "70000"),
        (
            vec!["--config".into(), config.display().to_string()],
            "colour",
        ),
        (
            vec!["--data-dir".into(), file.display().to_string()],
            "is not a directory",
        ),
    ];
    for (args, needle) in cases {
        let mut cmd = bare_binary_command();
        cmd.env("DATA_DIR", dir.path().join("data")).args(&args);
        let output = run_bounded(cmd, Duration::from_secs(30));
        assert!(!output.status.success(), "{args:?} started anyway");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_visits_and_exits_zero_with_every_acknowledged_visit_on_disk() {
    drains_in_flight_visits_on("TERM").await;
}

/// Ctrl-C in a terminal must not be actix's forced stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_drains_in_flight_visits_like_sigterm() {
    drains_in_flight_visits_on("INT").await;
}

/// Sends `signal` while 32 clients visit in a loop, then checks the exit
/// status and that the file holds exactly the acknowledged visits.
async fn drains_in_flight_visits_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let url = format!("{}/", server.address);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let url = url.clone();
            let stop = stop.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                let client = client();
                let (mut acked, mut sent) = (Vec::new(), 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 2000 {
                    sent += 1;
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => {
                            acked.push(visit_number(&r));
                            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(_) | Err(_) => break,
                    }
                }
                (acked, sent)
            })
        })
        .collect();
    // The signal lands under load: once a good number of visits are acknowledged.
    let loaded = wait_until_async(Duration::from_secs(30), || {
        let answered = answered.clone();
        async move { answered.load(std::sync::atomic::Ordering::Relaxed) > 100 }
    })
    .await;
    assert!(loaded, "the load never got going");

    server.signal(signal);
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait(Duration::from_secs(15));
        (status, server)
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut acked, mut sent) = (HashSet::new(), 0);
    for c in clients {
        let (numbers, n) = c.await.unwrap();
        sent += n;
        acked.extend(numbers);
    }
    assert!(status.0.success(), "exit status {:?}", status.0);
    let on_disk = count_on_disk(dir.path());
    assert!(
        acked.len() > 10,
        "the load ran before the signal ({} acknowledged)",
        acked.len()
    );
    assert_eq!(
        on_disk,
        acked.len() as u64,
        "file vs acknowledged (sent {sent})"
    );
    assert_eq!(acked.iter().max().copied(), Some(on_disk));
}

/// The drain: after SIGTERM the pod is unready at once but keeps serving
/// visits, each answer closing its connection, until the delay ends.
#[test]
fn sigterm_with_a_delay_keeps_serving_unready_with_connection_close_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--shutdown-delay-secs", "2"]);
    assert_eq!(server.visit(), 1);
    assert_eq!(
        server.get("/").header("connection"),
        None,
        "keep-alive before"
    );
    server.signal("TERM");
    assert!(
        test_support::wait_until(Duration::from_secs(5), || server.get("/readyz").status
            == 503),
        "readiness fails once SIGTERM arrived"
    );
    assert!(server.get("/readyz").text().contains("shutting down"));
    let during = server.get("/");
    assert_eq!(
        during.status, 200,
        "visits are still served during the delay"
    );
    assert_eq!(during.header("connection"), Some("close"));
    let number = during.visit_number();
    assert!(server.wait(Duration::from_secs(30)).success());
    assert_eq!(
        count_on_disk(dir.path()),
        number,
        "every served visit is on disk"
    );
    let logs: Vec<String> = server
        .logs()
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let started = logs
        .iter()
        .filter(|l| l.contains("shutdown delay started"))
        .count();
    let ended: Vec<_> = logs
        .iter()
        .filter(|l| l.contains("shutdown delay ended"))
        .collect();
    assert_eq!((started, ended.len()), (1, 1), "{logs:#?}");
    assert!(ended[0].contains("the delay passed"), "{}", ended[0]);
}

/// A second SIGTERM, or a SIGINT, during the delay skips the rest of it.
#[test]
fn a_second_signal_during_the_delay_skips_the_rest_of_it() {
    for second in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path(), &["--shutdown-delay-secs", "300"]);
        server.signal("TERM");
        assert!(test_support::wait_until(Duration::from_secs(5), || {
            server.get("/readyz").status == 503
        }));
        server.signal(second);
        assert!(
            server.wait(Duration::from_secs(30)).success(),
            "SIG{second}"
        );
        let logs = server.logs();
        let ended = logs
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .find(|l| l.contains("shutdown delay ended"))
            .expect("the delay's end is logged");
        assert!(ended.contains(&format!("SIG{second}")), "{ended}");
    }
}

/// A relative data folder of one component (`data`, as a user types it)
/// is created beside the working directory and made durable there.
#[test]
fn a_relative_data_folder_is_created_in_the_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(std::path::Path::new("data"));
    cmd.current_dir(cwd.path());
    let server = Server::start_command(cmd);
    assert_eq!(server.visit(), 1);
    assert_eq!(count_on_disk(&cwd.path().join("data")), 1);
}
