//! The machine: root, programs, mounts that unmount themselves, the data
//! folder, seeded randomness and knobs from the environment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::wait_until;

use moscow_time::store::TEMP_PREFIX;

/// Names of temporary files (`.visits.tmp-*`) in a data folder.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect()
}

/// A mount point that is unmounted (and its folder removed) on drop, even
/// when the test panics. Declare it before any [`Server`] using it, so the
/// server is dropped (killed) first.
pub struct Mount {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    /// A tmpfs mounted with `options` (e.g. `size=64k` or
    /// `size=64k,nr_inodes=3`), or why it cannot be had here.
    pub fn tmpfs(options: &str) -> Result<Mount, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("{options},mode=0755"),
            "tmpfs",
            path.to_str().unwrap(),
        ])?;
        Ok(Mount { path, _dir: dir })
    }

    /// A read-only bind mount of `source`, or why it cannot be had here.
    pub fn read_only_bind(source: &Path) -> Result<Mount, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let target = path.to_str().unwrap().to_owned();
        mount(&["--bind", source.to_str().unwrap(), &target])?;
        let guard = Mount { path, _dir: dir };
        mount(&["-o", "remount,bind,ro", &target])?;
        Ok(guard)
    }

    /// `mount -o remount,<opts>`; retried for a while because remounting
    /// read-only fails with EBUSY while a file is open for writing (the
    /// service holds `visits.lock` open only during a write).
    pub fn remount(&self, opts: &str) {
        let target = self.path.to_str().unwrap();
        let opts = format!("remount,{opts}");
        let mut last = String::new();
        let done = wait_until(Duration::from_secs(15), || {
            match mount(&["-o", &opts, target]) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            }
        });
        assert!(done, "mount -o {opts} {target} kept failing: {last}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = self.path.to_str().unwrap().to_owned();
        let ok = Command::new("umount")
            .arg(&target)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", &target]).status();
        }
    }
}

fn mount(args: &[&str]) -> Result<(), String> {
    let output = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Says why a test cannot run here. Under `REQUIRE_PRIVILEGED=1`, which
/// `scripts/test` sets, that fails the test, naming what is missing, so a
/// suite cannot pass by skipping; otherwise it prints and the test returns
/// early.
pub fn skip(test: &str, reason: &str) {
    if std::env::var("REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{test} cannot run: {reason} (REQUIRE_PRIVILEGED=1: no test may be skipped)");
    }
    eprintln!("SKIPPED {test}: {reason}");
}

/// `cmd` run through `wrapper` (a program that ends by executing the
/// command line it is given, like `setpriv` or `sh -c '... exec "$@"'`):
/// `cmd`'s program and arguments follow the wrapper's, and `cmd`'s
/// environment changes are kept.
pub fn run_through(mut wrapper: Command, cmd: &Command) -> Command {
    wrapper.arg(cmd.get_program()).args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapper.env(name, value),
            None => wrapper.env_remove(name),
        };
    }
    wrapper
}

/// Whether the tests run as root (`id -u` prints 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether a program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A small deterministic PRNG (xorshift64*), seeded from the clock or from
/// `RELIABILITY_SEED`, so that a failing random run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_clock(test: &str) -> Rng {
        let seed = std::env::var("RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: RELIABILITY_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A bound read from the environment, e.g. `KILL_ROUNDS`, or the default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pids cgroup of its own: every process started through
/// [`PidsCgroup::wrap`], threads included, counts against `pids.max`. Works
/// as root, unlike `RLIMIT_NPROC`, which root ignores and which counts every
/// process of a user machine-wide. Removed on drop.
pub struct PidsCgroup {
    dir: PathBuf,
}

impl PidsCgroup {
    /// A new cgroup allowing `max` tasks, under the cgroup v1 pids hierarchy
    /// or cgroup v2 (with `pids` in the root's `cgroup.subtree_control`),
    /// or what is missing for either.
    pub fn new(max: u32) -> Result<PidsCgroup, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "moscow-time-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut tried = Vec::new();
        for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
            let dir = Path::new(root).join(&name);
            if let Err(e) = std::fs::create_dir(&dir) {
                tried.push(format!("cannot create {}: {e}", dir.display()));
                continue;
            }
            let cgroup = PidsCgroup { dir };
            match std::fs::write(cgroup.dir.join("pids.max"), max.to_string()) {
                Ok(()) => return Ok(cgroup),
                Err(e) => tried.push(format!("{root} has no pids controller here ({e})")),
            }
        }
        Err(format!(
            "no pids cgroup (needs root and the pids controller, cgroup v1 or v2): {}",
            tried.join("; ")
        ))
    }

    /// `cmd`, started inside this cgroup: a shell moves itself in, then
    /// becomes the program (same process), so the program and every thread
    /// it starts count.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut shell = Command::new("sh");
        shell
            .args(["-c", r#"echo $$ > "$0" && exec "$@""#])
            .arg(self.dir.join("cgroup.procs"));
        run_through(shell, cmd)
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Fails only while a task is still inside; the OS then keeps it.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
