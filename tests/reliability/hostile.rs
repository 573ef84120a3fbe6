//! Hostile HTTP over raw TCP: every byte is written by hand, so the server
//! sees exactly what a scanner or an attacker would send. For each shape:
//! an answer in 4xx or a closed connection, the server stays up and ready,
//! its memory stays bounded, nothing counts as a visit, and no client text
//! becomes a metric label.
//!
//! Known shapes of answer (actix-http 3 parses before our middleware):
//! a request target of 8 KiB..64 KiB gets our 414; 64 KiB..128 KiB gets
//! actix's 400 (the `http` crate's URI length limit); a head over 128 KiB or
//! more than 96 headers gets actix's 431; header sections over 16 KiB get
//! our 431.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use test_support::count_on_disk;
use test_support::{Outcome, Rng, Server, exchange, metric};

/// Generous: memory may grow with allocator caches and actix's per-worker
/// buffers, but not with the number or size of hostile requests.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;

fn request(line: &str, headers: &str) -> Vec<u8> {
    format!("{line}\r\nHost: test\r\nConnection: close\r\n{headers}\r\n").into_bytes()
}

/// `bytes` refused with a 4xx or a closed connection; returns what happened.
fn assert_refused(addr: SocketAddr, name: &str, bytes: &[u8]) -> Outcome {
    let outcome = exchange(addr, bytes);
    match outcome {
        Outcome::Answered(status) => {
            assert!((400..500).contains(&status), "{name}: answered {status}")
        }
        Outcome::Closed => {}
    }
    outcome
}

/// The server is up, ready, has counted nothing, and its memory is bounded.
fn assert_unharmed(server: &mut Server, dir: &std::path::Path, rss_before: u64) {
    assert!(server.is_running(), "the server died");
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    assert_eq!(server.reported_count(), 0, "a hostile request counted");
    assert_eq!(count_on_disk(dir), 0, "a hostile request counted");
    let rss_after = server.rss_kib();
    eprintln!("RSS {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// A started server, warmed up (every route once) so that the RSS baseline
/// includes the lazily built parts.
fn warm_server(dir: &std::path::Path) -> (Server, u64) {
    let server = Server::start(dir, &[]);
    for path in [
        "/healthz",
        "/readyz",
        "/visits",
        "/metrics",
        "/api/time",
        "/nowhere",
    ] {
        server.get(path);
    }
    let rss = server.rss_kib();
    (server, rss)
}

#[test]
fn oversized_request_targets_and_header_sections_are_refused_and_never_count() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, rss_before) = warm_server(dir.path());
    let addr = server.addr;
    let a = |n: usize| "a".repeat(n);
    let header = |name: &str, n: usize| format!("{name}: {}\r\n", "b".repeat(n));

    // Our promises, on the counting path itself.
    let exact = [
        (
            "query over 8 KiB on /",
            request(&format!("GET /?q={} HTTP/1.1", a(9000)), ""),
            414,
        ),
        (
            "path over 8 KiB",
            request(&format!("GET /{} HTTP/1.1", a(9000)), ""),
            414,
        ),
        (
            "query of 60 KiB on /",
            request(&format!("GET /?{} HTTP/1.1", a(60_000)), ""),
            414,
        ),
        (
            "three 6 KiB headers on /",
            request(
                "GET / HTTP/1.1",
                &(header("x-a", 6000) + &header("x-b", 6000) + &header("x-c", 6000)),
            ),
            431,
        ),
        (
            "one 17 KiB header on /",
            request("GET / HTTP/1.1", &header("x-a", 17_000)),
            431,
        ),
    ];
    // Other shapes: any 4xx or a closed connection.
    let many_small: String = (0..500).map(|i| format!("x-{i}: v\r\n")).collect();
    let others = [
        (
            "one 200 KiB header",
            request("GET / HTTP/1.1", &header("x-big", 200 * 1024)),
        ),
        ("500 small headers", request("GET / HTTP/1.1", &many_small)),
        (
            "a 100 KiB target",
            request(&format!("GET /?{} HTTP/1.1", a(100 * 1024)), ""),
        ),
        (
            "a 200 KiB target",
            request(&format!("GET /?{} HTTP/1.1", a(200 * 1024)), ""),
        ),
        (
            "a 9 KiB method",
            request(&format!("{} / HTTP/1.1", "G".repeat(9000)), ""),
        ),
        (
            "a 20 KiB header name",
            request("GET / HTTP/1.1", &format!("{}: v\r\n", "n".repeat(20_000))),
        ),
        (
            "1 MiB without a line end",
            [b"GET / HTTP/1.1\r\nx-a: ".as_slice(), &vec![b'b'; 1 << 20]].concat(),
        ),
    ];

    // Repeated, so a leak per request would show in RSS.
    for _ in 0..10 {
        for (name, bytes, status) in &exact {
            match exchange(addr, bytes) {
                Outcome::Answered(s) => assert_eq!(s, *status, "{name}"),
                Outcome::Closed => panic!("{name}: closed instead of {status}"),
            }
        }
        for (name, bytes) in &others {
            assert_refused(addr, name, bytes);
        }
    }
    assert_unharmed(&mut server, dir.path(), rss_before);
}

#[test]
fn malformed_and_hostile_requests_answer_4xx_or_close_and_never_count() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, rss_before) = warm_server(dir.path());
    let addr = server.addr;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Methods: unknown, lowercase, control bytes, counting-route lookalikes.
        ("unknown method", request("FOO / HTTP/1.1", "")),
        ("lowercase get", request("get / HTTP/1.1", "")),
        ("TRACE", request("TRACE / HTTP/1.1", "")),
        ("CONNECT", request("CONNECT 127.0.0.1:1 HTTP/1.1", "")),
        ("OPTIONS *", request("OPTIONS * HTTP/1.1", "")),
        ("control byte in method", request("G\u{1}T / HTTP/1.1", "")),
        (
            "POST to /",
            request("POST / HTTP/1.1", "content-length: 0\r\n"),
        ),
        (
            "PUT to /",
            request("PUT / HTTP/1.1", "content-length: 3\r\n"),
        ),
        // Broken framing on the counting route.
        ("no HTTP version", b"GET /\r\n\r\n".to_vec()),
        ("HTTP/9.9", request("GET / HTTP/9.9", "")),
        (
            "header without a colon",
            request("GET / HTTP/1.1", "broken\r\n"),
        ),
        (
            "NUL in a header name",
            request("GET / HTTP/1.1", "x\u{0}y: 1\r\n"),
        ),
        (
            "negative content-length",
            request("GET / HTTP/1.1", "content-length: -1\r\n"),
        ),
        (
            "huge content-length",
            request(
                "GET / HTTP/1.1",
                "content-length: 99999999999999999999999\r\n",
            ),
        ),
        (
            "content-length and chunked",
            request(
                "POST / HTTP/1.1",
                "content-length: 4\r\ntransfer-encoding: chunked\r\n",
            ),
        ),
        ("garbage", b"\x00\x01\x02\xff garbage\r\n\r\n".to_vec()),
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        // Path traversal: never a file, never the page.
        ("dot-dot", request("GET /../../etc/passwd HTTP/1.1", "")),
        (
            "encoded dot-dot",
            request("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1", ""),
        ),
        (
            "encoded slash",
            request("GET /..%2f..%2fetc%2fpasswd HTTP/1.1", ""),
        ),
        (
            "double-encoded",
            request("GET /%252e%252e/%252e%252e/etc/passwd HTTP/1.1", ""),
        ),
        (
            "dot-dot after a route",
            request("GET /visits/../../etc/passwd HTTP/1.1", ""),
        ),
        (
            "backslashes",
            request("GET /..\\..\\etc\\passwd HTTP/1.1", ""),
        ),
        (
            "absolute URL",
            request("GET http://evil.example/etc/passwd HTTP/1.1", ""),
        ),
        // Non-UTF-8 in the path, raw and percent-encoded.
        (
            "raw 0xff 0xfe",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "overlong UTF-8",
            b"GET /\xc0\xaf HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "encoded invalid UTF-8",
            request("GET /%ff%fe%c0%af HTTP/1.1", ""),
        ),
        (
            "raw escape byte",
            b"GET /\x1b[31m HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
    ];
    // Absurd query strings on routes that do not count: a normal answer
    // (they are valid requests) or a refusal, never a 5xx or a count.
    let queries: Vec<(&str, Vec<u8>)> = vec![
        (
            "7000 ampersands",
            request(&format!("GET /visits?{} HTTP/1.1", "&".repeat(7000)), ""),
        ),
        (
            "encoded NUL and newline",
            request("GET /healthz?%00%0a%0d%ff=%ff HTTP/1.1", ""),
        ),
        (
            "lone percents",
            request(&format!("GET /metrics?{} HTTP/1.1", "%".repeat(5000)), ""),
        ),
        (
            "brackets",
            request(
                &format!("GET /api/time?{} HTTP/1.1", "a[][]=1&".repeat(800)),
                "",
            ),
        ),
    ];
    let mut answered = 0;
    for _ in 0..5 {
        for (name, bytes) in &cases {
            if let Outcome::Answered(_) = assert_refused(addr, name, bytes) {
                answered += 1;
            }
        }
        for (name, bytes) in &queries {
            if let Outcome::Answered(status) = exchange(addr, bytes) {
                assert!((200..500).contains(&status), "{name}: answered {status}");
            }
        }
    }
    eprintln!(
        "{answered} of {} malformed requests answered 4xx, the rest closed",
        5 * cases.len()
    );
    let passwd = server.get("/../../etc/passwd");
    assert!(!passwd.text().contains("root:"), "a file was served");
    assert_unharmed(&mut server, dir.path(), rss_before);
}

/// Whether the server has closed `stream` (EOF or reset), reading for up to
/// `wait`. Bytes before the close (e.g. a 408) are skipped.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// A generous bound on how long a stalled connection may live; actix's
/// `client_request_timeout` and keep-alive default to 5 s.
const STALL_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn clients_that_never_finish_a_request_are_disconnected_within_a_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, rss_before) = warm_server(dir.path());
    let addr = server.addr;
    let connect = move || {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };

    let silent = std::thread::spawn(move || {
        let mut s = connect();
        closed_within(&mut s, STALL_LIMIT)
    });
    let half_head = std::thread::spawn(move || {
        let mut s = connect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n").unwrap();
        closed_within(&mut s, STALL_LIMIT)
    });
    let idle_keep_alive = std::thread::spawn(move || {
        let mut s = connect();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        closed_within(&mut s, STALL_LIMIT)
    });
    // Slowloris: one more header line every 500 ms, never the blank line.
    let drip = std::thread::spawn(move || {
        let mut s = connect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n").unwrap();
        let started = Instant::now();
        for i in 0.. {
            if started.elapsed() > STALL_LIMIT {
                return false;
            }
            if s.write_all(format!("x-drip-{i}: {i}\r\n").as_bytes())
                .is_err()
            {
                return true;
            }
            if closed_within(&mut s, Duration::from_millis(500)) {
                return true;
            }
        }
        unreachable!()
    });

    for (name, client) in [
        ("a silent connection", silent),
        ("half a request head", half_head),
        ("an idle keep-alive connection", idle_keep_alive),
        ("a slowloris drip", drip),
    ] {
        assert!(
            client.join().unwrap(),
            "{name} was still open after {STALL_LIMIT:?}"
        );
    }
    assert_unharmed(&mut server, dir.path(), rss_before);
}

/// The soft open-files limit of this process (inherited by the server).
fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[test]
fn two_thousand_idle_connections_neither_block_visitors_nor_outlive_the_timeout() {
    let wanted = 2000u64;
    if open_files_limit() < wanted + 256 {
        // Raise the soft limit up to the hard one, without unsafe code.
        let _ = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                "--nofile=unlimited:",
            ])
            .status();
        let _ = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={}:", wanted + 256),
            ])
            .status();
    }
    let limit = open_files_limit();
    let n = wanted.min(limit.saturating_sub(256)) as usize;
    if (n as u64) < wanted {
        eprintln!("open files limit is {limit}: scaled down to {n} idle connections");
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut server, rss_before) = warm_server(dir.path());
    let addr = server.addr;

    let mut idle: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            if i % 2 == 1 {
                s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            }
            s
        })
        .collect();

    // Real clients are served while every idle connection is open.
    assert_eq!(server.get("/readyz").status, 200);
    assert_eq!(server.visit(), 1);
    let rss_loaded = server.rss_kib();

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut still_open = 0;
    for s in &mut idle {
        if !closed_within(s, deadline.saturating_duration_since(Instant::now())) {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "idle connections still open after 60 s");
    drop(idle);

    eprintln!("{n} idle connections: RSS {rss_before} KiB before, {rss_loaded} KiB with them open");
    assert!(server.is_running());
    assert_eq!(
        server.reported_count(),
        1,
        "an idle or partial request counted"
    );
    assert_eq!(count_on_disk(dir.path()), 1);
    let rss_after = server.rss_kib();
    assert!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// The values of one label over every series of one metric family.
fn label_values(text: &str, family: &str, label: &str) -> BTreeSet<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
        .filter_map(|labels| {
            let start = labels.find(&key)? + key.len();
            let len = labels[start..].find('"')?;
            Some(labels[start..start + len].to_owned())
        })
        .collect()
}

#[test]
fn unknown_paths_and_methods_never_create_new_metric_label_values() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = warm_server(dir.path());
    let mut rng = Rng::from_env_or_clock("unknown_paths_and_methods");
    let methods = [
        "GET", "POST", "FOO", "PROPFIND", "BREW", "M-SEARCH", "get", "DELETE",
    ];
    let mut tokens = Vec::new();
    for i in 0..300 {
        let token = format!("zz{:x}", rng.next_u64());
        let method = methods[i % methods.len()];
        let path = match i % 4 {
            0 => format!("/{token}"),
            1 => format!("/wp-admin/{token}.php"),
            2 => format!("/visits/{token}"),
            _ => format!("/metrics/{token}?{token}={token}"),
        };
        let outcome = exchange(
            server.addr,
            &request(&format!("{method} {path} HTTP/1.1"), ""),
        );
        assert!(
            matches!(outcome, Outcome::Answered(s) if (400..500).contains(&s)),
            "{method} {path}: {outcome:?}"
        );
        tokens.push(token);
    }

    let text = server.get("/metrics").text();
    let family = "moscow_time_http_requests_total";
    let routes = label_values(&text, family, "route");
    let known: BTreeSet<String> = [
        "/",
        "/visits",
        "/visits/cluster",
        "/api/time",
        "/healthz",
        "/readyz",
        "/metrics",
        "unmatched",
    ]
    .map(String::from)
    .into();
    assert!(routes.is_subset(&known), "route label values {routes:?}");
    let methods_seen = label_values(&text, family, "method");
    let bounded: BTreeSet<String> = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "OTHER",
    ]
    .map(String::from)
    .into();
    assert!(
        methods_seen.is_subset(&bounded),
        "method label values {methods_seen:?}"
    );
    for token in &tokens {
        assert!(!text.contains(token.as_str()), "{token} reached /metrics");
    }
    let series = text.lines().filter(|l| l.starts_with(family)).count();
    assert!(
        series <= 40,
        "{series} series of {family} after 300 unknown requests"
    );
    assert_eq!(metric(&text, "moscow_time_visits_total"), Some(0.0));
}
