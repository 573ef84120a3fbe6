//! Power loss: a power cut after any single file-system call loses no
//! acknowledged visit.
//!
//! The real binary runs with its data folder on [`powerfs`], a FUSE file
//! system that logs every call changing what a disk holds. Concurrent
//! clients visit `/`; each 200 is noted with its visit number and how many
//! calls were logged when it arrived (the answer comes only after the
//! folder fsync returned, so that mark is sound). Then `kill -9`. For every
//! cut point (after 0, 1, ... all logged calls) and every kind of cut, the
//! folder a power cut would leave must hold a parsable `visits` with at
//! least every visit acknowledged before the cut and at most the visits
//! sent. The binary is then "rebooted" onto one such image (preferably one
//! with a half-done write's debris) on a fresh mount: it must start, remove
//! the debris and count on from the image's count. That image is the disk
//! of the next round.
//!
//! A second test runs deliberately broken write sequences on the same file
//! system and model and asserts that each is caught, so this test can fail;
//! the real run's log is also checked with every acknowledgement moved
//! before its folder fsync, which must be caught too.
//!
//! `set-count --force` over a corrupt `visits` must keep the corrupt bytes
//! on disk at every cut (with its own must-fail twin), and a data folder
//! the service itself creates must survive every cut (the store fsyncs the
//! folder holding each folder it creates).
//!
//! Knobs: `POWER_ROUNDS` (default 5); `RELIABILITY_SEED` fixes the kill
//! delays, the random mixes and the reboot choices (the calls themselves
//! still depend on timing). A run takes a few seconds.

#[path = "powerfs/mod.rs"]
mod powerfs;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use test_support::{
    Conn, Rng, Server, bare_binary_command, env_or, run_bounded, skip, temp_files, wait_until,
};

use powerfs::PowerFs;
use powerfs::disk::{self, Cut, CutKind, Image, Mix, Recording};
use powerfs::memfs::{Call, Journal};

/// The longest any single wait (startup, a request, an exit) may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Random mixes looked at per cut point, besides the two fixed kinds.
const RANDOM_MIXES: u64 = 4;
/// Concurrent clients during the load.
const CLIENTS: usize = 4;
/// Visits acknowledged under load before the kill may come.
const ACKS_BEFORE_KILL: usize = 30;
const TEMP_PREFIX: &str = ".visits.tmp-";

#[test]
fn a_power_cut_after_any_file_system_call_loses_no_acknowledged_visit() {
    let Some(seed) = seed_or_skip("power-cut test") else {
        return;
    };
    let rounds: u32 = env_or("POWER_ROUNDS", 5);
    let mut mix = Mix::new(seed);
    let began = Instant::now();
    let (mut disk, mut start) = (Image::new(), 0);
    let (mut cut_points, mut images) = (0, 0);

    for round in 1..=rounds {
        let what = format!("round {round}");
        let fs = mount(&disk);
        let tally = Arc::new(Tally::default());
        let mut service = boot(&fs, "", start, &tally, &what);
        load_then_kill(&fs, &mut service, &tally, &mut mix, &what);

        let recording = fs.recording();
        assert!(
            recording.folder_fsyncs() > 0,
            "{what}: the service made no folder fsync in {} calls: nothing is tested",
            recording.calls.len()
        );
        let expected = tally.expectations(start, "visits");
        let verdict = check_every_cut(&recording, &expected, mix.next());
        verdict.assert_clean(&what);
        let early = Expectations {
            acks: acks_before_their_folder_fsync(&recording, &expected.acks),
            ..expected
        };
        assert!(
            !check_every_cut(&recording, &early, mix.next())
                .violations
                .is_empty(),
            "{what}: acknowledgements moved before their folder fsync went unnoticed"
        );
        cut_points += recording.calls.len() + 1;
        images += verdict.images;

        let (after, kind) = verdict.reboot_choice(&recording, &mut mix);
        disk = disk::image_after(&recording, after, kind);
        start = count_in(&disk, "visits").expect("a checked image holds a count");
        eprintln!(
            "{what}: {} calls, {} acknowledged visits; rebooting onto the cut after call {after}, {kind}, which holds {start} and {} temporary file(s)",
            recording.calls.len(),
            expected.acks.len(),
            disk.keys().filter(|path| is_debris(path)).count()
        );
    }
    let fs = mount(&disk);
    drop(boot(
        &fs,
        "",
        start,
        &Arc::new(Tally::default()),
        "final reboot",
    ));
    eprintln!(
        "power: {cut_points} cut points ({images} images) checked over {rounds} rounds in {:.1?}",
        began.elapsed()
    );
}

/// The service creates a missing data folder. The folder's own entry in
/// its parent is durable only once the parent is fsynced, so until then a
/// power cut can take the whole folder, acknowledged visits and all.
#[test]
fn a_data_folder_the_service_creates_survives_a_power_cut() {
    let Some(seed) = seed_or_skip("created-data-folder power-cut test") else {
        return;
    };
    let mut mix = Mix::new(seed);
    let what = "a data folder made by the service";
    let fs = mount(&Image::new());
    let tally = Arc::new(Tally::default());
    let mut service = boot(&fs, "data", 0, &tally, what);
    load_then_kill(&fs, &mut service, &tally, &mut mix, what);
    let recording = fs.recording();
    let expected = tally.expectations(0, "data/visits");
    check_every_cut(&recording, &expected, mix.next()).assert_clean(what);
}

#[test]
fn broken_write_sequences_are_caught_at_the_cut_that_loses_them() {
    let Some(seed) = seed_or_skip("broken-write-sequence test") else {
        return;
    };
    let verdict = check_writer(Writer::Correct, seed);
    assert!(
        verdict.violations.is_empty(),
        "the correct write sequence must pass the model: {:?}",
        verdict.violations.first()
    );
    let broken = [
        (
            Writer::NoFolderFsync,
            "(rename .visits.tmp-1 -> visits)",
            "everything unsynced lost",
        ),
        (
            Writer::RenameBeforeDataSync,
            "(rename .visits.tmp-1 -> visits)",
            "metadata kept, unsynced data lost",
        ),
        (
            Writer::FsyncOfLockFileInsteadOfFolder,
            "(fsync visits.lock)",
            "everything unsynced lost",
        ),
        (
            Writer::WriteInPlace,
            "(truncate visits to 0 bytes)",
            "metadata kept, unsynced data lost",
        ),
    ];
    for (writer, call, kind) in broken {
        let verdict = check_writer(writer, seed);
        let caught = verdict.violations.iter().find(|v| {
            v.starts_with("power cut after call") && v.contains(call) && v.contains(kind)
        });
        match caught {
            Some(violation) => eprintln!("{writer:?} caught: {violation}"),
            None => panic!(
                "{writer:?} was not caught at the cut after `{call}`, {kind}; violations: {:#?}",
                verdict.violations
            ),
        }
    }
}

// ------------------------------------------------------------ the check

/// A visit acknowledged with a 200, and how many calls the file system had
/// logged when the answer arrived.
#[derive(Debug, Clone, Copy)]
struct Ack {
    mark: usize,
    visit: u64,
}

/// What one recording is checked against.
struct Expectations {
    /// The path of `visits` in an image.
    visits: &'static str,
    /// The count durable when the file system was mounted.
    start: u64,
    /// Visits sent (an upper bound on those counted).
    sent: u64,
    acks: Vec<Ack>,
}

/// The outcome of checking every cut of one recording.
struct Verdict {
    images: usize,
    violations: Vec<String>,
    /// Cuts whose image holds a temporary file: good reboot targets.
    with_debris: Vec<(usize, CutKind)>,
}

impl Verdict {
    /// Fails the test with the first violations, if there are any.
    fn assert_clean(&self, what: &str) {
        assert!(
            self.violations.is_empty(),
            "{what}: {} of {} power-cut images lose or break the count; the first ones:\n{}",
            self.violations.len(),
            self.images,
            self.violations[..self.violations.len().min(5)].join("\n")
        );
    }

    /// A cut to reboot onto: one with debris when there is one.
    fn reboot_choice(&self, recording: &Recording, mix: &mut Mix) -> (usize, CutKind) {
        if self.with_debris.is_empty() {
            let after = mix.below(recording.calls.len() as u64 + 1) as usize;
            (after, CutKind::RandomMix(mix.next()))
        } else {
            self.with_debris[mix.below(self.with_debris.len() as u64) as usize]
        }
    }
}

/// Checks the image of every cut of `recording` in every kind.
fn check_every_cut(recording: &Recording, expected: &Expectations, seed: u64) -> Verdict {
    let mut acks = expected.acks.clone();
    acks.sort_by_key(|a| a.mark);
    let mut acks = acks.into_iter().peekable();
    let mut required = expected.start;
    let most = expected.start + expected.sent;
    check_cuts(recording, seed, |cut, image| {
        while let Some(ack) = acks.next_if(|a| a.mark <= cut.after) {
            required = required.max(ack.visit);
        }
        check_image(image, expected.visits, required, most)
    })
}

/// Runs `check` on every cut's image and gathers what it finds, each
/// violation prefixed with the cut that shows it.
fn check_cuts(
    recording: &Recording,
    seed: u64,
    mut check: impl FnMut(&Cut<'_>, &Image) -> Result<(), String>,
) -> Verdict {
    let (mut violations, mut with_debris) = (Vec::new(), Vec::new());
    let images = disk::for_each_cut(recording, RANDOM_MIXES, seed, |cut, image| {
        if let Err(problem) = check(cut, image) {
            violations.push(format!("{cut}: {problem}"));
        }
        if image.keys().any(|path| is_debris(path)) {
            with_debris.push((cut.after, cut.kind));
        }
    });
    Verdict {
        images,
        violations,
        with_debris,
    }
}

/// The acknowledgements as a service that answered before its folder
/// fsync would have made them: each mark moved to just before the last
/// folder fsync that preceded it. The check must catch them, or it could
/// not catch such a service either.
fn acks_before_their_folder_fsync(recording: &Recording, acks: &[Ack]) -> Vec<Ack> {
    acks.iter()
        .map(|ack| Ack {
            mark: recording.calls[..ack.mark]
                .iter()
                .rposition(|call| matches!(call, Call::FsyncDir { .. }))
                .unwrap_or(0),
            visit: ack.visit,
        })
        .collect()
}

/// `visits` must parse and hold between `least` and `most`.
fn check_image(image: &Image, visits: &str, least: u64, most: u64) -> Result<(), String> {
    let count = count_in(image, visits)?;
    if count < least {
        return Err(format!(
            "{visits} holds {count}, but {least} was acknowledged (or durable) before the cut"
        ));
    }
    if count > most {
        return Err(format!(
            "{visits} holds {count}, more than the {most} ever sent"
        ));
    }
    Ok(())
}

/// Whether an image path is a temporary file of an unfinished write.
fn is_debris(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with(TEMP_PREFIX))
}

/// The count in an image's `visits`, strictly `digits\n`; missing is 0.
fn count_in(image: &Image, visits: &str) -> Result<u64, String> {
    let Some(bytes) = image.get(visits) else {
        return Ok(0);
    };
    let text = String::from_utf8_lossy(bytes);
    text.strip_suffix('\n')
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| format!("{visits} is not a count: {text:?}"))
}

// ------------------------------------------------------------ the real binary

/// What the clients of one round sent and were told.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acks: Mutex<Vec<Ack>>,
}

impl Tally {
    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    fn expectations(&self, start: u64, visits: &'static str) -> Expectations {
        Expectations {
            visits,
            start,
            sent: self.sent.load(Ordering::SeqCst),
            acks: self.acks.lock().unwrap().clone(),
        }
    }

    /// One visit; a 200 is noted with the log's length at its arrival.
    fn visit(&self, addr: SocketAddr, journal: &Journal) -> Option<u64> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        let answer = Conn::connect(addr)
            .and_then(|mut conn| conn.get("/"))
            .ok()?;
        let visit = (answer.status == 200).then(|| answer.visit_number())?;
        let mark = journal.calls_logged();
        self.acks.lock().unwrap().push(Ack { mark, visit });
        Some(visit)
    }
}

fn mount(disk: &Image) -> PowerFs {
    PowerFs::mount(disk).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts the binary with its data folder at `data` in `fs` and checks
/// that it came up clean: no debris, the count `start`, and the next visit
/// numbered `start + 1`.
fn boot(fs: &PowerFs, data: &str, start: u64, tally: &Tally, what: &str) -> Server {
    let data_dir = fs.path().join(data);
    let service = Server::start(&data_dir, &[]);
    let debris = temp_files(&data_dir);
    assert!(
        debris.is_empty(),
        "{what}: debris left after startup: {debris:?}"
    );
    assert_eq!(
        service.get("/visits").text().trim(),
        start.to_string(),
        "{what}: the count at startup"
    );
    let first = tally.visit(service.addr, &fs.journal());
    assert_eq!(
        first,
        Some(start + 1),
        "{what}: the first visit after the reboot"
    );
    service
}

/// Concurrent clients until enough visits are acknowledged, then `kill -9`
/// at a random moment.
fn load_then_kill(
    fs: &PowerFs,
    service: &mut Server,
    tally: &Arc<Tally>,
    mix: &mut Mix,
    what: &str,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|_| {
            let (stop, tally, journal, addr) = (
                Arc::clone(&stop),
                Arc::clone(tally),
                fs.journal(),
                service.addr,
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if tally.visit(addr, &journal).is_none() {
                        // Load pacing: a refused client retries after a breath.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        })
        .collect();
    wait_until(TIMEOUT, || tally.acked() >= ACKS_BEFORE_KILL);
    let acked = tally.acked();
    if acked >= ACKS_BEFORE_KILL {
        // Deliberate: the power cut lands at a random moment of the load.
        std::thread::sleep(Duration::from_millis(mix.below(500)));
    }
    service.signal("KILL");
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    service.wait(TIMEOUT);
    assert!(
        acked >= ACKS_BEFORE_KILL,
        "{what}: only {acked} visits acknowledged within {TIMEOUT:?}"
    );
}

/// The seed for one test, or `None` (after saying why) when the power-loss
/// file system cannot be mounted here.
fn seed_or_skip(test: &str) -> Option<u64> {
    if let Some(reason) = powerfs::unavailable() {
        skip(test, &reason);
        return None;
    }
    Some(Rng::from_env_or_clock(test).next_u64())
}

// ------------------------------------------------------------ set-count

/// What a corrupt `visits` holds in the set-count tests.
const CORRUPT: &[u8] = b"12abc\n";

/// `set-count --force` over a corrupt `visits` keeps the corrupt bytes
/// beside it before replacing them: at every cut they are still on disk,
/// and once the command has returned `visits` holds the new count.
#[test]
fn set_count_force_never_loses_the_corrupt_file_it_replaces() {
    let Some(seed) = seed_or_skip("set-count power-cut test") else {
        return;
    };
    let fs = mount(&Image::from([("visits".to_owned(), CORRUPT.to_vec())]));
    let mut command = bare_binary_command();
    command
        .env("DATA_DIR", fs.path())
        .args(["set-count", "--force", "7"]);
    let output = run_bounded(command, TIMEOUT);
    assert!(
        output.status.success(),
        "set-count --force 7 failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let done = fs.journal().calls_logged();
    let recording = fs.recording();
    assert!(
        recording.folder_fsyncs() > 0,
        "set-count made no folder fsync"
    );
    check_kept_aside(&recording, done, seed)
        .assert_clean("set-count --force 7 over a corrupt file");
}

/// Proves the set-count check can fail: keeping the copy aside without a
/// folder fsync before `visits` is replaced is caught.
#[test]
fn keeping_a_corrupt_file_aside_without_a_folder_fsync_is_caught() {
    let Some(seed) = seed_or_skip("keep-aside test") else {
        return;
    };
    for fsync_between in [true, false] {
        let fs = mount(&Image::from([("visits".to_owned(), CORRUPT.to_vec())]));
        keep_aside_then_replace(fs.path(), fsync_between).expect("the writes succeed");
        let done = fs.journal().calls_logged();
        let verdict = check_kept_aside(&fs.recording(), done, seed);
        let caught = verdict.violations.iter().find(|v| {
            v.contains("(rename .visits.tmp-7 -> visits)")
                && v.contains("only each folder's newest entry change kept")
        });
        match (fsync_between, caught) {
            (true, _) => verdict.assert_clean("keeping aside with a folder fsync"),
            (false, Some(violation)) => {
                eprintln!("keeping aside without a folder fsync caught: {violation}")
            }
            (false, None) => panic!(
                "keeping aside without a folder fsync was not caught; violations: {:#?}",
                verdict.violations
            ),
        }
    }
}

/// At every cut the corrupt bytes are in `visits` or in a kept copy;
/// `visits` holds them or `7`, and `7` once the command returned.
fn check_kept_aside(recording: &Recording, done: usize, seed: u64) -> Verdict {
    check_cuts(recording, seed, |cut, image| {
        let visits = image.get("visits").map(Vec::as_slice);
        let kept = image
            .iter()
            .any(|(path, bytes)| path.starts_with("visits.corrupt-") && bytes == CORRUPT);
        if visits != Some(CORRUPT) && !kept {
            return Err(format!(
                "the corrupt bytes are gone: visits holds {:?} and no visits.corrupt-* holds them",
                visits.map(String::from_utf8_lossy)
            ));
        }
        let allowed: &[&[u8]] = if cut.after >= done {
            &[b"7\n"]
        } else {
            &[CORRUPT, b"7\n"]
        };
        match visits {
            Some(bytes) if allowed.contains(&bytes) => Ok(()),
            other => Err(format!(
                "visits holds {:?}, expected one of {:?}",
                other.map(String::from_utf8_lossy),
                allowed
                    .iter()
                    .map(|b| String::from_utf8_lossy(b))
                    .collect::<Vec<_>>()
            )),
        }
    })
}

/// Keeps `visits` aside as `visits.corrupt-test` (written and fsynced),
/// with or without a folder fsync, then writes 7 the correct way.
fn keep_aside_then_replace(dir: &Path, fsync_between: bool) -> io::Result<()> {
    let mut copy = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join("visits.corrupt-test"))?;
    copy.write_all(CORRUPT)?;
    copy.sync_all()?;
    if fsync_between {
        File::open(dir)?.sync_all()?;
    }
    write_count(dir, 7, Writer::Correct)
}

// ------------------------------------------------------------ broken writers

/// Ways to write the count: the store's, and four broken ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Temporary file, fsync, rename, folder fsync (as the store does).
    Correct,
    /// The rename is never made durable.
    NoFolderFsync,
    /// Renamed over `visits` before its data was fsynced.
    RenameBeforeDataSync,
    /// The lock file is fsynced where the folder should be.
    FsyncOfLockFileInsteadOfFolder,
    /// `visits` truncated and rewritten in place (then fsynced, folder too).
    WriteInPlace,
}

/// Writes counts 1, 2, 3 with `writer` on a fresh mount holding `0`, each
/// "acknowledged" when its write returns, and checks every cut.
fn check_writer(writer: Writer, seed: u64) -> Verdict {
    let fs = mount(&Image::from([("visits".to_owned(), b"0\n".to_vec())]));
    let journal = fs.journal();
    let mut acks = Vec::new();
    for count in 1..=3 {
        write_count(fs.path(), count, writer)
            .unwrap_or_else(|e| panic!("{writer:?} failed to write {count}: {e}"));
        acks.push(Ack {
            mark: journal.calls_logged(),
            visit: count,
        });
    }
    let expected = Expectations {
        visits: "visits",
        start: 0,
        sent: 3,
        acks,
    };
    check_every_cut(&fs.recording(), &expected, seed)
}

fn write_count(dir: &Path, count: u64, writer: Writer) -> io::Result<()> {
    let text = format!("{count}\n");
    let visits = dir.join("visits");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("visits.lock"))?;
    if writer == Writer::WriteInPlace {
        let mut file = File::create(&visits)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        return File::open(dir)?.sync_all();
    }
    let temp = dir.join(format!("{TEMP_PREFIX}{count}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    file.write_all(text.as_bytes())?;
    if writer == Writer::RenameBeforeDataSync {
        fs::rename(&temp, &visits)?;
        file.sync_all()?;
    } else {
        file.sync_all()?;
        fs::rename(&temp, &visits)?;
    }
    match writer {
        Writer::NoFolderFsync => Ok(()),
        Writer::FsyncOfLockFileInsteadOfFolder => lock.sync_all(),
        _ => File::open(dir)?.sync_all(),
    }
}
