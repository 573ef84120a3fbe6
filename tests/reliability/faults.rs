//! A faulty data folder: full, read-only, not writable by the service's
//! user, locked by someone else, missing, or not a folder; and config files
//! that are not config. Every runtime fault must answer 503 (never a false
//! 200), fail readiness, keep the old count intact, and heal by itself once
//! the fault is gone, without a restart.
//!
//! Mount tests need root; without it they skip with a printed reason (the
//! fault-seam unit test `an_interrupted_write_leaves_either_the_old_or_the_new_count`
//! covers a failing write at every step).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use test_support::{Mount, Server, get, have, is_root, run_bounded, skip, temp_files};
use test_support::{WRITE_PROBE_FAILED, log_write_probes, wait_until};
use test_support::{bare_binary_command, binary_command, count_on_disk, run_through};

const ERRORS: &str = "moscow_time_persist_errors_total";
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// Fills the file system holding `path` with one file until ENOSPC (tmpfs
/// hands out its last pages only to whoever asks for them, so write until
/// the kernel says no rather than computing a size).
fn fill_until_enospc(path: &Path) {
    let mut file = File::create(path).unwrap();
    let chunk = [0u8; 4096];
    for _ in 0..1_000_000 {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => return,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    panic!("{} never filled up", path.display());
}

/// While a fault lasts: visits answer 503 without a number, readiness
/// fails naming `reason`, liveness stays up, the count is unchanged.
fn assert_refusing(server: &Server, dir: &Path, count: u64, reason: &str) {
    for _ in 0..3 {
        let response = server.get("/");
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(response.header("x-visit-number").is_none());
        assert_eq!(response.header("retry-after"), Some("1"));
    }
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(
        ready.text().contains(reason),
        "readiness says {:?}",
        ready.text()
    );
    assert_eq!(server.get("/healthz").status, 200, "liveness must not fail");
    assert_eq!(count_on_disk(dir), count, "the old count is intact");
    assert_eq!(server.reported_count(), count);
}

/// After a fault: ready again within a bound (the writer probes every
/// second), counting on from the right number, same process, no debris.
fn assert_recovers(server: &mut Server, dir: &Path, pid: u32, count: u64) {
    assert!(
        server.wait_ready(Duration::from_secs(30)),
        "not ready 30 s after the fault was removed: {}",
        server.get("/readyz").text()
    );
    assert_eq!(server.visit(), count + 1);
    assert_eq!(count_on_disk(dir), count + 1);
    assert!(server.is_running());
    assert_eq!(server.pid(), pid, "recovered without a restart");
    assert!(temp_files(dir).is_empty(), "{:?}", temp_files(dir));
}

/// The runtime fault scenario on a fresh tmpfs of `size`: three visits,
/// then `inject` the fault; every visit is refused naming `reason`, the count
/// stays 3 and the error counter rises; then `remove` it, and the same
/// process recovers on its own.
fn refuses_during_a_fault_and_recovers(
    test: &str,
    size: &str,
    reason: &str,
    inject: impl FnOnce(&Mount),
    remove: impl FnOnce(&Mount),
) {
    let Some(mnt) = tmpfs_or_skip(test, size) else {
        return;
    };
    let mut server = Server::start(&mnt.path, &[]);
    let pid = server.pid();
    for i in 1..=3 {
        assert_eq!(server.visit(), i);
    }
    let errors_before = server.metric(ERRORS);

    inject(&mnt);
    assert_refusing(&server, &mnt.path, 3, reason);
    assert!(
        server.metric(ERRORS) > errors_before,
        "{ERRORS} did not rise"
    );

    remove(&mnt);
    assert_recovers(&mut server, &mnt.path, pid, 3);
}

#[test]
fn a_full_disk_answers_503_keeps_the_count_and_resumes_when_space_returns() {
    refuses_during_a_fault_and_recovers(
        "a_full_disk_answers_503",
        "256k",
        "No space left on device",
        |mnt| fill_until_enospc(&mnt.path.join("filler")),
        |mnt| fs::remove_file(mnt.path.join("filler")).unwrap(),
    );
}

#[test]
fn a_volume_remounted_read_only_while_serving_answers_503_and_recovers_when_writable() {
    refuses_during_a_fault_and_recovers(
        "a_volume_remounted_read_only",
        "1m",
        "Read-only file system",
        |mnt| mnt.remount("ro"),
        |mnt| mnt.remount("rw"),
    );
}

#[test]
fn a_read_only_data_folder_stops_startup_with_a_clear_error_and_keeps_the_file() {
    let test = "a_read_only_data_folder_stops_startup";
    let source = tempfile::tempdir().unwrap();
    fs::write(source.path().join("visits"), "7\n").unwrap();
    let mnt = match Mount::read_only_bind(source.path()) {
        Ok(m) => m,
        Err(reason) => return skip(test, &reason),
    };

    let output = run_bounded(binary_command(&mnt.path), STARTUP_LIMIT);

    assert!(!output.status.success(), "started on a read-only folder");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&mnt.path.display().to_string()), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert_eq!(fs::read_to_string(mnt.path.join("visits")).unwrap(), "7\n");
}

/// `cmd` run as nobody (uid/gid 65534) through `setpriv(1)`.
fn as_nobody(cmd: &Command) -> Command {
    let mut setpriv = Command::new("setpriv");
    setpriv.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    run_through(setpriv, cmd)
}

#[test]
fn a_data_folder_the_service_user_cannot_write_stops_startup_with_a_clear_error() {
    let test = "a_data_folder_the_service_user_cannot_write";
    if !is_root() || !have("setpriv") {
        return skip(
            test,
            "needs root and setpriv(1) to run the binary as an unprivileged user",
        );
    }
    let mut version = bare_binary_command();
    version.arg("--version");
    let probe = run_bounded(as_nobody(&version), STARTUP_LIMIT);
    if !probe.status.success() {
        return skip(test, "nobody (65534) cannot execute the test binary here");
    }
    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let existing = root.path().join("existing");
    fs::create_dir(&existing).unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(existing.join("visits"), "5\n").unwrap();
    let missing = root.path().join("missing/nested");

    for (dir, needle) in [
        (&existing, "visits.lock"),
        (&missing, "failed to create the data directory"),
    ] {
        let output = run_bounded(as_nobody(&binary_command(dir)), STARTUP_LIMIT);
        assert!(
            !output.status.success(),
            "{}: started anyway",
            dir.display()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
        assert!(stderr.contains("Permission denied"), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    assert_eq!(fs::read_to_string(existing.join("visits")).unwrap(), "5\n");
    assert!(!missing.exists());
}

#[test]
fn a_lock_held_past_the_write_timeout_fails_visits_with_503_and_they_succeed_after_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(dir.path());
    log_write_probes(&mut cmd).args(["--write-timeout-ms", "300"]);
    let mut server = Server::start_command(cmd);
    let pid = server.pid();
    assert_eq!(server.visit(), 1);
    assert_eq!(server.visit(), 2);

    // Another process's lock: a separate open file description, so the
    // flock conflicts with the server's exactly as another process's would.
    let holder = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join("visits.lock"))
        .unwrap();
    holder.lock().unwrap();

    let addr = server.addr;
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let response = get(addr, "/");
                (response.status, started.elapsed())
            })
        })
        .collect();
    for w in waiting {
        let (status, waited) = w.join().unwrap();
        assert_eq!(status, 503, "a visit behind a held lock");
        assert!(
            waited >= Duration::from_millis(300),
            "answered after {waited:?}: it did not wait for the lock"
        );
    }
    assert_refusing(&server, dir.path(), 2, "waiting for the lock");
    // Still refusing once the idle writer's probe retried and timed out again.
    let probes = server.count_logs(WRITE_PROBE_FAILED);
    assert!(
        wait_until(Duration::from_secs(30), || server
            .count_logs(WRITE_PROBE_FAILED)
            > probes),
        "no write probe ran"
    );
    assert_eq!(server.get("/readyz").status, 503);

    holder.unlock().unwrap();
    drop(holder);
    assert_recovers(&mut server, dir.path(), pid, 2);
}

#[test]
fn missing_nested_data_folders_are_created_through_the_binary() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/c");
    let server = Server::start(&dir, &[]);
    assert_eq!(
        count_on_disk(&dir),
        0,
        "visits exists from the first second"
    );
    assert_eq!(server.visit(), 1);
    assert_eq!(count_on_disk(&dir), 1);
}

#[test]
fn a_data_folder_below_a_plain_file_stops_startup_naming_the_path() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("plain");
    fs::write(&file, "x").unwrap();
    let dir = file.join("data");

    let output = run_bounded(binary_command(&dir), STARTUP_LIMIT);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("Not a directory"), "{stderr}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn config_files_that_are_missing_unreadable_or_not_json_stop_startup_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let path = root.path().join(name);
        fs::write(&path, content).unwrap();
        path
    };
    let cases = [
        (root.path().join("absent.json"), "cannot read config file"),
        (root.path().to_path_buf(), "cannot read config file"),
        (write("yaml.json", "port: 8000\n"), "is invalid"),
        (write("empty.json", ""), "is invalid"),
        (write("truncated.json", r#"{"port": 80"#), "is invalid"),
        (
            write("wrong-type.json", r#"{"port": "eighty"}"#),
            "is invalid",
        ),
        (write("array.json", "[1, 2]"), "is invalid"),
        (write("binary.json", "\u{0}\u{1}\u{2}"), "is invalid"),
    ];
    for (path, needle) in cases {
        let mut cmd = bare_binary_command();
        cmd.env("DATA_DIR", root.path().join("data"))
            .arg("--config")
            .arg(&path);
        let output = run_bounded(cmd, STARTUP_LIMIT);
        assert!(
            !output.status.success(),
            "{}: started anyway",
            path.display()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains(needle), "{}: {stderr}", path.display());
    }
    assert!(!root.path().join("data").exists(), "nothing was created");
}

/// A tmpfs of `size`, or `None` after printing why the test is skipped.
fn tmpfs_or_skip(test: &str, size: &str) -> Option<Mount> {
    Mount::tmpfs(&format!("size={size}"))
        .map_err(|reason| {
            skip(
                test,
                &format!("{reason}; the fault-seam unit test covers a failing write"),
            )
        })
        .ok()
}
