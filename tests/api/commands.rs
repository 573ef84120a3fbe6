//! The operator commands `count`, `set-count` and `idle` of the real binary,
//! against real folders, next to a real server.

use std::collections::HashSet;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use test_support::{
    Mount, Server, bare_binary_command, client, count_on_disk, is_root, run_bounded, skip,
    visit_number, wait_until,
};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `moscow-time <args>` with `DATA_DIR` set, as `kubectl exec` would.
fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = bare_binary_command();
    cmd.env("DATA_DIR", dir).args(args);
    run_bounded(cmd, LIMIT)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn count_prints_the_count_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("visits"), "1234\n").unwrap();
    let output = run(dir.path(), &["count"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "1234\n");
    assert_eq!(
        names(dir.path()),
        ["visits"],
        "no lock or temp file was made"
    );
}

#[test]
fn count_refuses_a_corrupt_file_as_startup_does_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("visits");
    std::fs::write(&path, "12abc\n").unwrap();
    let output = run(dir.path(), &["count"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("is corrupt") && message.contains(&path.display().to_string()));
    assert_eq!(std::fs::read(&path).unwrap(), b"12abc\n");
    assert_eq!(names(dir.path()), ["visits"]);
    let served = run_bounded(
        {
            let mut cmd = bare_binary_command();
            cmd.env("DATA_DIR", dir.path()).args(["--port", "0"]);
            cmd
        },
        LIMIT,
    );
    let startup = stderr(&served);
    let first_line = |text: &str| {
        text.lines()
            .find(|l| l.contains("is corrupt"))
            .map(str::to_owned)
    };
    let (from_count, from_startup) = (first_line(&message), first_line(&startup));
    assert!(from_count.is_some(), "{message}");
    assert!(
        from_startup.as_deref().unwrap().contains(
            from_count
                .as_deref()
                .unwrap()
                .trim_start_matches("moscow-time: ")
        ),
        "count and startup say the same:\n{message}\n{startup}"
    );
}

#[test]
fn count_works_on_a_read_only_volume() {
    if !is_root() {
        return skip(
            "count_works_on_a_read_only_volume",
            "needs root for a bind mount",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("visits"), "7\n").unwrap();
    let mount = match Mount::read_only_bind(dir.path()) {
        Ok(mount) => mount,
        Err(why) => return skip("count_works_on_a_read_only_volume", &why),
    };
    let output = run(&mount.path, &["count"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "7\n");
}

#[test]
fn count_on_a_missing_folder_is_an_error_that_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let output = run(&missing, &["count"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(!missing.exists());
}

#[test]
fn set_count_raises_freely_and_lowers_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("visits"), "10\n").unwrap();

    let raised = run(dir.path(), &["set-count", "41"]);
    assert!(raised.status.success(), "{}", stderr(&raised));
    assert_eq!(stdout(&raised), "visits: 10 -> 41\n");
    assert_eq!(count_on_disk(dir.path()), 41);

    let lowered = run(dir.path(), &["set-count", "5"]);
    assert!(!lowered.status.success());
    assert!(stderr(&lowered).contains("--force"), "{}", stderr(&lowered));
    assert_eq!(count_on_disk(dir.path()), 41, "refused means unchanged");

    let forced = run(dir.path(), &["set-count", "--force", "5"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(stdout(&forced), "visits: 41 -> 5\n");
    assert_eq!(count_on_disk(dir.path()), 5);
}

#[test]
fn set_count_force_keeps_a_corrupt_file_byte_for_byte_and_the_server_counts_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("visits");
    let corrupt = b"12abc\n\x00\xff".to_vec();
    std::fs::write(&path, &corrupt).unwrap();

    let refused = run(dir.path(), &["set-count", "41"]);
    assert!(!refused.status.success());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        corrupt,
        "untouched without --force"
    );

    let forced = run(dir.path(), &["set-count", "--force", "41"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(
        stdout(&forced).contains("visits: corrupt -> 41"),
        "{}",
        stdout(&forced)
    );
    let kept: Vec<_> = names(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("visits.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", names(dir.path()));
    assert_eq!(std::fs::read(dir.path().join(&kept[0])).unwrap(), corrupt);

    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.visit(), 42);
    drop(server);
    assert!(
        dir.path().join(&kept[0]).exists(),
        "startup never removes the kept copy"
    );
}

/// A volume with no room for one more file: `set-count --force` cannot keep
/// the corrupt copy, so it must say so and stop, leaving the corrupt file
/// as it was (not retry other names forever, not replace it unkept).
#[test]
fn set_count_force_on_a_full_volume_fails_and_leaves_the_corrupt_file() {
    let test = "set_count_force_on_a_full_volume_fails_and_leaves_the_corrupt_file";
    // Three inodes: the folder, `visits` and `visits.lock`; none for a copy.
    let mount = match Mount::tmpfs("size=64k,nr_inodes=3") {
        Ok(mount) => mount,
        Err(why) => return skip(test, &why),
    };
    let path = mount.path.join("visits");
    let corrupt = b"12abc\n".to_vec();
    std::fs::write(&path, &corrupt).unwrap();
    std::fs::write(mount.path.join("visits.lock"), "").unwrap();
    assert!(
        std::fs::write(mount.path.join("probe"), "").is_err(),
        "the volume still has room for a file, so this test would prove nothing"
    );

    let output = run(&mount.path, &["set-count", "--force", "41"]);
    assert!(!output.status.success(), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(
        message.contains("visits.corrupt-") && message.contains("No space left"),
        "names the copy it could not create and why: {message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), corrupt);
    assert_eq!(names(&mount.path), ["visits", "visits.lock"]);
}

#[test]
fn bad_counts_are_refused_with_a_clear_error_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("visits"), "3\n").unwrap();
    for bad in ["x", "-1", "18446744073709551616", "1.5", ""] {
        let output = run(dir.path(), &["set-count", bad]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("N"),
            "{bad:?}: {}",
            stderr(&output)
        );
        assert_eq!(count_on_disk(dir.path()), 3, "{bad:?}");
    }
}

/// `set-count` beside a running server under load: the server's next
/// visits count on from the new number; no number is handed out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_count_beside_a_loaded_server_is_where_the_server_counts_on_from() {
    const SET_TO: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = format!("{}/", server.address);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, stop) = (client(), url.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut numbers = Vec::new();
                while !stop.load(Ordering::Relaxed) && numbers.len() < 20_000 {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    numbers.push(visit_number(&response));
                }
                numbers
            })
        })
        .collect();
    // The set lands under load, and the load goes on past it.
    let dir_path = dir.path().to_path_buf();
    let (set, went_on) = tokio::task::spawn_blocking(move || {
        let at_least = |n: u64| wait_until(LIMIT, || count_on_disk(&dir_path) >= n);
        assert!(at_least(100), "the load never got going");
        let set = run(&dir_path, &["set-count", "1000000"]);
        (set, at_least(SET_TO + 100))
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(went_on, "the load stopped at the set");
    let mut numbers = Vec::new();
    for task in clients {
        numbers.extend(task.await.unwrap());
    }
    let distinct: HashSet<_> = numbers.iter().collect();
    assert_eq!(
        distinct.len(),
        numbers.len(),
        "a visit number was handed out twice"
    );
    let after = numbers.iter().filter(|n| **n > SET_TO).count() as u64;
    assert!(
        after > 0,
        "the load ended before the set; nothing was tested"
    );
    assert_eq!(count_on_disk(dir.path()), SET_TO + after);
}

#[test]
fn idle_waits_for_a_signal_then_exits_zero() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut idle = Server::spawn_idle(dir.path());
        // A deliberate pause, what the test is about: idle does not return by itself.
        std::thread::sleep(Duration::from_millis(300));
        assert!(idle.is_running(), "idle returned by itself");
        idle.signal(signal);
        assert!(idle.wait(LIMIT).success(), "SIG{signal}");
    }
}
