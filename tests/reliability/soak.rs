//! A bounded soak: steady mixed load for `SOAK_SECS` (default 30 s) while
//! `/metrics` is scraped and the `visits` file is read the way `cat` does
//! (open, read, close) in a loop. Nothing may fail, every read of the file
//! must parse and never go backwards, memory must stay flat after warm-up,
//! and at the end the file holds exactly the number of 200 visits.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use test_support::count_on_disk;
use test_support::{Conn, Server, env_or, metric};

/// Flat means: at most this much growth from the end of warm-up to the end.
const RSS_GROWTH_LIMIT_KIB: u64 = 10 * 1024;

type Errors = Arc<Mutex<Vec<String>>>;

/// Runs `step` on one keep-alive connection until `stop`; a transport
/// error or a failed check is recorded, not retried silently.
fn worker(
    server: &Server,
    stop: &Arc<AtomicBool>,
    errors: &Errors,
    mut step: impl FnMut(&mut Conn) -> Result<(), String> + Send + 'static,
) -> JoinHandle<()> {
    let (addr, stop, errors) = (server.addr, Arc::clone(stop), Arc::clone(errors));
    std::thread::spawn(move || {
        let mut conn = Conn::connect(addr).unwrap();
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = step(&mut conn) {
                errors.lock().unwrap().push(e);
                conn = match Conn::connect(addr) {
                    Ok(c) => c,
                    Err(e) => {
                        errors.lock().unwrap().push(format!("reconnect: {e}"));
                        return;
                    }
                };
            }
        }
    })
}

fn expect_ok(conn: &mut Conn, path: &str) -> Result<String, String> {
    let response = conn.get(path).map_err(|e| format!("GET {path}: {e}"))?;
    if response.status != 200 {
        return Err(format!("GET {path}: {}", response.status));
    }
    Ok(response.text())
}

/// Reads `visits` like `cat`: strictly digits and one newline, never less
/// than the previous read.
fn read_file_strictly(path: &PathBuf, last: &mut u64) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read visits: {e}"))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("visits not UTF-8: {bytes:?}"))?;
    let count: u64 = text
        .strip_suffix('\n')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("visits does not parse: {text:?}"))?;
    if count < *last {
        return Err(format!("visits went back from {last} to {count}"));
    }
    *last = count;
    Ok(())
}

#[test]
fn a_mixed_load_soak_keeps_memory_flat_every_file_read_parseable_and_the_count_exact() {
    let secs: u64 = env_or("SOAK_SECS", 30);
    let duration = Duration::from_secs(secs.max(5));
    let warm_up = duration / 5;
    let dir = tempfile::tempdir().unwrap();
    // Readiness is checked throughout: a write stalled past the default 5 s
    // on an overloaded machine (seen under stress-ng) is no soak failure,
    // so the stall limit here is wide.
    let mut server = Server::start(dir.path(), &["--write-timeout-ms", "30000"]);
    let stop = Arc::new(AtomicBool::new(false));
    let errors: Errors = Arc::default();
    let numbers = Arc::new(Mutex::new(Vec::new()));

    let mut workers = Vec::new();
    for _ in 0..2 {
        let numbers = Arc::clone(&numbers);
        workers.push(worker(&server, &stop, &errors, move |conn| {
            let response = conn.get("/").map_err(|e| format!("GET /: {e}"))?;
            if response.status != 200 {
                return Err(format!("GET /: {}", response.status));
            }
            numbers.lock().unwrap().push(response.visit_number());
            Ok(())
        }));
    }
    let mut last_reported = 0;
    workers.push(worker(&server, &stop, &errors, move |conn| {
        let count: u64 = expect_ok(conn, "/visits")?
            .trim()
            .parse()
            .map_err(|_| "GET /visits: not a number".to_string())?;
        if count < last_reported {
            return Err(format!("/visits went back from {last_reported} to {count}"));
        }
        last_reported = count;
        for path in ["/healthz", "/readyz", "/api/time"] {
            expect_ok(conn, path)?;
        }
        Ok(())
    }));
    let mut last_scraped = 0.0;
    workers.push(worker(&server, &stop, &errors, move |conn| {
        let text = expect_ok(conn, "/metrics")?;
        let total = metric(&text, "moscow_time_visits_total")
            .ok_or_else(|| "no moscow_time_visits_total".to_string())?;
        if total < last_scraped {
            return Err(format!(
                "visits_total went back from {last_scraped} to {total}"
            ));
        }
        last_scraped = total;
        // Load pacing: a scrape every 100 ms, as a busy Prometheus would.
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }));
    let file = dir.path().join("visits");
    let reads = Arc::new(Mutex::new(0u64));
    {
        let (stop, errors, reads) = (Arc::clone(&stop), Arc::clone(&errors), Arc::clone(&reads));
        workers.push(std::thread::spawn(move || {
            let mut last = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Err(e) = read_file_strictly(&file, &mut last) {
                    errors.lock().unwrap().push(e);
                }
                *reads.lock().unwrap() += 1;
                // Load pacing: a reader every millisecond.
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }

    let started = Instant::now();
    // The soak's own clock, what it is about: warm-up, then checks over its duration.
    std::thread::sleep(warm_up);
    let rss_warm = server.rss_kib();
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            errors.lock().unwrap().is_empty(),
            "{:?}",
            errors.lock().unwrap()
        );
    }
    let rss_end = server.rss_kib();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }

    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
    let numbers = numbers.lock().unwrap();
    let acked = numbers.len() as u64;
    assert_eq!(
        count_on_disk(dir.path()),
        acked,
        "file vs visits answered 200"
    );
    let distinct: HashSet<u64> = numbers.iter().copied().collect();
    assert_eq!(
        distinct,
        (1..=acked).collect(),
        "visit numbers are 1..=N, each once"
    );
    eprintln!(
        "soak {secs} s: {acked} visits, {} reads of the file; RSS {rss_warm} KiB after warm-up, {rss_end} KiB at the end",
        reads.lock().unwrap()
    );
    assert!(
        rss_end <= rss_warm + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_warm} KiB to {rss_end} KiB"
    );
}
