//! `kill -9` at random moments under concurrent load, on one folder, many
//! times in a row, alone and next to a second process sharing the folder.
//!
//! What a crash may do: lose visits that were never acknowledged (they were
//! in flight), and leave a `.visits.tmp-*` file behind. What it must never
//! do: lose an acknowledged visit, hand out a number twice, leave `visits`
//! unparsable, count more than was sent, or leave debris after a restart.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use test_support::count_on_disk;
use test_support::{Conn, Rng, Server, env_or, temp_files, wait_until};

/// What the clients sent and were told, over every round of a test.
#[derive(Default)]
struct Tally {
    /// Requests written to a connection (an upper bound on visits counted).
    sent: AtomicU64,
    /// Visit numbers acknowledged with a 200.
    acked: Mutex<Vec<u64>>,
}

impl Tally {
    fn acked_len(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn max_acked(&self) -> u64 {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Every acknowledged number is distinct: no number was handed out twice.
    fn assert_distinct(&self) {
        let acked = self.acked.lock().unwrap();
        let distinct: HashSet<u64> = acked.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            acked.len(),
            "a visit number was acknowledged twice: an acknowledged visit was lost in a crash"
        );
    }
}

/// A client visiting `/` on one keep-alive connection (reconnecting after
/// errors) until `stop`.
fn hammer(addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut conn: Option<Conn> = None;
        while !stop.load(Ordering::SeqCst) {
            if conn.is_none() {
                match Conn::connect(addr) {
                    Ok(c) => conn = Some(c),
                    Err(_) => {
                        // Load pacing: reconnect after a breath while the server restarts.
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                }
            }
            tally.sent.fetch_add(1, Ordering::SeqCst);
            match conn.as_mut().map(|c| c.get("/")) {
                Some(Ok(r)) if r.status == 200 => {
                    tally.acked.lock().unwrap().push(r.visit_number());
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => conn = None,
            }
        }
    })
}

fn start_clients(
    n: usize,
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|_| hammer(addr, Arc::clone(stop), Arc::clone(tally)))
        .collect()
}

/// Waits until `more` further visits are acknowledged (the load is on).
fn wait_for_acks(tally: &Tally, more: usize, what: &str) {
    let target = tally.acked_len() + more;
    assert!(
        wait_until(Duration::from_secs(60), || tally.acked_len() >= target),
        "{what}: fewer than {more} visits acknowledged within 60 s"
    );
}

/// After a crash: `visits` parses (strictly), holds at least every
/// acknowledged number and at most what was sent. Returns the count.
fn assert_consistent_after_crash(dir: &std::path::Path, tally: &Tally, what: &str) -> u64 {
    let on_disk = count_on_disk(dir);
    let (max_acked, sent) = (tally.max_acked(), tally.sent());
    assert!(
        on_disk >= max_acked,
        "{what}: visits holds {on_disk} but visit {max_acked} was acknowledged"
    );
    assert!(
        on_disk <= sent,
        "{what}: visits holds {on_disk} but only {sent} requests were sent"
    );
    on_disk
}

#[test]
fn kill_9_under_load_twenty_times_in_a_row_never_loses_an_acknowledged_visit() {
    let rounds: u32 = env_or("KILL_ROUNDS", 20);
    let mut rng = Rng::from_env_or_clock("kill_9_under_load");
    let dir = tempfile::tempdir().unwrap();
    let tally = Arc::new(Tally::default());
    let mut rounds_with_debris = 0;
    let mut server = Server::start(dir.path(), &[]);

    for round in 1..=rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = start_clients(8, server.addr, &stop, &tally);
        wait_for_acks(&tally, 5, &format!("round {round}"));
        // Deliberate: the kill lands at a random moment of the load.
        std::thread::sleep(Duration::from_millis(rng.range(0, 250)));

        let status = server.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        assert_eq!(status.signal(), Some(9), "round {round}: {status:?}");
        if !temp_files(dir.path()).is_empty() {
            rounds_with_debris += 1;
        }
        let on_disk = assert_consistent_after_crash(dir.path(), &tally, &format!("round {round}"));

        server = Server::start(dir.path(), &[]);
        let debris = temp_files(dir.path());
        assert!(
            debris.is_empty(),
            "round {round}: left after restart: {debris:?}"
        );
        assert_eq!(
            server.reported_count(),
            on_disk,
            "round {round}: restart count"
        );
        assert_eq!(
            count_on_disk(dir.path()),
            on_disk,
            "round {round}: restart changed the file"
        );
    }

    tally.assert_distinct();
    let on_disk = count_on_disk(dir.path());
    assert_eq!(
        server.visit(),
        on_disk + 1,
        "counting goes on after the last crash"
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
    assert_eq!(count_on_disk(dir.path()), on_disk + 1);
    eprintln!(
        "{rounds} kills: {} visits acknowledged of {} sent, {on_disk} on disk; \
         {rounds_with_debris} kills left a temporary file (removed at restart)",
        tally.acked_len(),
        tally.sent()
    );
}

#[test]
fn killing_one_of_two_processes_on_one_folder_leaves_the_survivor_counting_exactly() {
    let rounds: u32 = env_or("KILL_ROUNDS_SHARED", 8);
    let mut rng = Rng::from_env_or_clock("killing_one_of_two_processes");
    let dir = tempfile::tempdir().unwrap();
    let tally = Arc::new(Tally::default());
    let mut survivor = Server::start(dir.path(), &["--instance", "survivor"]);
    let mut expected = 0;

    for round in 1..=rounds {
        let mut victim = Server::start(dir.path(), &["--instance", "victim"]);
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = start_clients(4, victim.addr, &stop, &tally);
        clients.extend(start_clients(4, survivor.addr, &stop, &tally));
        wait_for_acks(&tally, 10, &format!("round {round}"));
        // Deliberate: the kill lands at a random moment of the load.
        std::thread::sleep(Duration::from_millis(rng.range(0, 250)));

        let status = victim.kill9();
        assert_eq!(status.signal(), Some(9), "round {round}: {status:?}");
        // The survivor's clients go on while the victim is dead.
        wait_for_acks(&tally, 20, &format!("round {round}, after the kill"));
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        let on_disk = assert_consistent_after_crash(dir.path(), &tally, &format!("round {round}"));

        // The survivor counts on from the file, not from its own memory:
        // exactly one more per acknowledged visit.
        assert_eq!(survivor.get("/readyz").status, 200, "round {round}");
        for i in 1..=20 {
            let number = survivor.visit();
            assert_eq!(number, on_disk + i, "round {round}: survivor visit {i}");
            tally.acked.lock().unwrap().push(number);
            tally.sent.fetch_add(1, Ordering::SeqCst);
        }
        expected = on_disk + 20;
        assert_eq!(count_on_disk(dir.path()), expected, "round {round}");
        drop(victim);
    }

    tally.assert_distinct();
    survivor.signal("TERM");
    assert!(survivor.wait(Duration::from_secs(30)).success());
    assert_eq!(count_on_disk(dir.path()), expected);
    let restarted = Server::start(dir.path(), &[]);
    assert!(temp_files(dir.path()).is_empty());
    assert_eq!(restarted.reported_count(), expected);
    eprintln!(
        "{rounds} kills of one of two processes: {} visits acknowledged of {} sent, {expected} on disk",
        tally.acked_len(),
        tally.sent()
    );
}
