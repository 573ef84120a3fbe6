//! The durable visit counter: the `visits` file, its lock, and group commit.
//!
//! Layout of a data folder:
//!
//! | file | what it is |
//! |---|---|
//! | `visits` | the count, `N\n`, replaced atomically on every write |
//! | `visits.lock` | an empty file that is only ever locked, never renamed |
//! | `.visits.tmp-*` | a write in flight; a leftover one is a crash's debris |
//!
//! Why this shape: a file written in place can be left empty or half
//! written by a crash, so every write goes to a temporary file in the same
//! folder, is fsynced, renamed over `visits`, and the folder is fsynced so
//! the rename itself survives a power cut. Several processes may share one
//! volume, so each write happens under an exclusive lock on `visits.lock`
//! and re-reads `visits` first: the lock file is separate because `visits`
//! itself is replaced (a lock on a renamed-away inode protects nothing).
//!
//! [`Store`] does one durable write; [`Committer`] batches concurrent visits
//! into one such write (group commit) on a dedicated thread.

mod commit;
pub mod format;
mod metrics;

pub use commit::{Committer, CommitterConfig, Health, VisitError};
pub use metrics::StoreMetrics;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use format::FormatError;

/// The name of the count file inside the data folder.
pub const VISITS_FILE: &str = "visits";
/// The name of the lock file inside the data folder.
pub const LOCK_FILE: &str = "visits.lock";
/// The prefix of temporary files; anything with it is removed at startup.
pub const TEMP_PREFIX: &str = ".visits.tmp-";
/// The prefix of a corrupt `visits` file kept aside by a forced
/// [`Store::set`]; such files are never overwritten or removed.
pub const CORRUPT_PREFIX: &str = "visits.corrupt-";

/// A point inside one durable write, where a [`FaultHook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The exclusive lock is held and the current count was read.
    Locked,
    /// The new count is written to the temporary file (not yet synced).
    TempWritten,
    /// The temporary file is fsynced.
    TempSynced,
    /// The temporary file was renamed over `visits`.
    Renamed,
    /// The folder is fsynced: the write is durable.
    DirSynced,
}

impl Step {
    /// Every step, in the order a write goes through them.
    pub const ALL: [Step; 5] = [
        Step::Locked,
        Step::TempWritten,
        Step::TempSynced,
        Step::Renamed,
        Step::DirSynced,
    ];
}

/// A hook called after each [`Step`]; returning an error aborts the write
/// there, as a failing disk would, and blocking holds it, as a hung one
/// would. Fault injection ([`faults`](crate::faults)) and tests install one.
pub type FaultHook = Arc<dyn Fn(Step) -> io::Result<()> + Send + Sync>;

/// What went wrong with the data folder, and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data folder path exists but is not a folder.
    #[error("data directory {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// `visits` holds something that is not a count.
    #[error(
        "visits file {} is corrupt: {problem}. It was left untouched. \
         `moscow-time count` shows this check again; `moscow-time set-count --force N` \
         replaces the file with the count N and keeps the corrupt one beside it as \
         {CORRUPT_PREFIX}<UTC time>. On Kubernetes, run these with `kubectl exec` in a pod \
         started in diagnostic mode (the chart's diagnosticMode.enabled=true).",
        path.display()
    )]
    Corrupt {
        /// The file's path.
        path: PathBuf,
        /// What is wrong with its content.
        problem: FormatError,
    },
    /// The data folder does not exist (only [`Store::at`] users see this:
    /// the server creates it).
    #[error("data directory {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A forced change was asked for without `--force`.
    #[error("refusing to {what} without --force (the count is {current})")]
    NeedsForce {
        /// What would have happened.
        what: String,
        /// The count now, if the file is valid.
        current: String,
    },
    /// The lock stayed taken by someone else for longer than the timeout.
    #[error("timed out after {waited:?} waiting for the lock on {}", path.display())]
    LockTimeout {
        /// The lock file's path.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// Adding the batch would pass `u64::MAX`.
    #[error("visits file {} holds {count}; adding {add} would overflow the counter", path.display())]
    Overflow {
        /// The file's path.
        path: PathBuf,
        /// The count before the batch.
        count: u64,
        /// The batch size.
        add: u64,
    },
    /// An I/O call failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What we were doing, e.g. "fsync the temporary file for".
        action: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

impl StoreError {
    /// What went wrong, without any path: what a client may be told (the
    /// kind of failure and the system's own words, such as "No space left on
    /// device"). The `Display` text, with paths, is for the log.
    pub fn reason(&self) -> String {
        match self {
            StoreError::NotADirectory(_) => "the data directory is not a directory".into(),
            StoreError::Corrupt { problem, .. } => format!("the visits file is corrupt: {problem}"),
            StoreError::Missing(_) => "the data directory does not exist".into(),
            StoreError::NeedsForce { what, .. } => format!("refusing to {what} without --force"),
            StoreError::LockTimeout { waited, .. } => {
                format!("timed out after {waited:?} waiting for the lock")
            }
            StoreError::Overflow { count, .. } => {
                format!("the count {count} cannot grow any further")
            }
            StoreError::Io { source, .. } => {
                format!("a write to the data directory failed: {source}")
            }
        }
    }
}

/// Creates `dir` and every missing folder above it, then fsyncs the folder
/// holding each new entry (from the first one that existed down), so that
/// a power cut cannot take a folder the store has written visits into.
fn create_dir_durably(dir: &Path) -> Result<(), StoreError> {
    let mut created = Vec::new();
    let mut existing = dir;
    while !existing.exists() {
        created.push(existing);
        existing = match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    fs::create_dir_all(dir).map_err(io_err("create the data directory", dir))?;
    for folder in std::iter::once(existing).chain(created.into_iter().rev()) {
        File::open(folder)
            .and_then(|f| f.sync_all())
            .map_err(io_err("fsync the new folder", folder))?;
    }
    Ok(())
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`Store::set`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    /// The count before, or `None` when the file was corrupt.
    pub previous: Option<u64>,
    /// Where the corrupt file was kept, if it was.
    pub kept: Option<PathBuf>,
}

/// One data folder holding one count. Cheap to share: it holds only paths.
pub struct Store {
    dir: PathBuf,
    visits: PathBuf,
    lock: PathBuf,
    lock_timeout: Duration,
    fault: Option<FaultHook>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if missing) the data folder, removes temporary files
    /// left by a crash, validates `visits`, and proves the folder writable by
    /// durably rewriting the current count (creating `visits` with `0` on a
    /// fresh volume, so `cat visits` works from the first second).
    ///
    /// A corrupt `visits` is an error and is not modified.
    pub fn open(
        dir: impl Into<PathBuf>,
        lock_timeout: Duration,
    ) -> Result<(Self, u64), StoreError> {
        Self::open_with_fault(dir, lock_timeout, None)
    }

    /// [`Store::open`] with a [`FaultHook`] called after each [`Step`] of
    /// every write, or none. This is how the server opens its store: with
    /// `--fault-injection` its hook carries the injected faults
    /// ([`faults`](crate::faults)); tests install their own to fail or
    /// hold a write at a chosen step.
    pub fn open_with_fault(
        dir: impl Into<PathBuf>,
        lock_timeout: Duration,
        fault: Option<FaultHook>,
    ) -> Result<(Self, u64), StoreError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if !meta.is_dir() => return Err(StoreError::NotADirectory(dir)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir_durably(&dir)?;
            }
            Err(e) => return Err(io_err("inspect the data directory", &dir)(e)),
        }
        let store = Store {
            visits: dir.join(VISITS_FILE),
            lock: dir.join(LOCK_FILE),
            dir,
            lock_timeout,
            fault,
        };
        // Validate before taking any lock or writing anything, so that a
        // corrupt file is refused even on a read-only volume.
        store.read_count()?;
        let count = store.with_lock(|| {
            store.remove_leftovers()?;
            let count = store.read_count()?;
            store.replace(count)?;
            Ok(count)
        })?;
        Ok((store, count))
    }

    /// A store on an existing data folder, without touching it: nothing is
    /// created, cleaned, locked or written until a method asks for it. For
    /// the operator commands, which must work beside a running server and
    /// on a read-only volume.
    pub fn at(dir: impl Into<PathBuf>, lock_timeout: Duration) -> Result<Self, StoreError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(StoreError::NotADirectory(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::Missing(dir)),
            Err(e) => return Err(io_err("inspect the data directory", &dir)(e)),
        }
        Ok(Store {
            visits: dir.join(VISITS_FILE),
            lock: dir.join(LOCK_FILE),
            dir,
            lock_timeout,
            fault: None,
        })
    }

    /// Durably sets the count to `count` with the same write as every
    /// visit, under the same lock, so a server on the same folder counts
    /// on from it. Lowering the count or replacing a corrupt file needs
    /// `force`; a corrupt file is then first kept beside it, durably, as
    /// `visits.corrupt-<UTC time>`. Returns the previous count (`None` when
    /// the file was corrupt) and the path of the kept copy, if any.
    pub fn set(&self, count: u64, force: bool) -> Result<SetOutcome, StoreError> {
        self.with_lock(|| {
            let previous = match self.read_count() {
                Ok(previous) => Some(previous),
                Err(StoreError::Corrupt { .. }) if force => None,
                Err(error) => return Err(error),
            };
            if let Some(previous) = previous
                && count < previous
                && !force
            {
                return Err(StoreError::NeedsForce {
                    what: format!("lower the count from {previous} to {count}"),
                    current: previous.to_string(),
                });
            }
            let kept = match previous {
                Some(_) => None,
                None => Some(self.keep_corrupt_copy()?),
            };
            self.replace(count)?;
            Ok(SetOutcome { previous, kept })
        })
    }

    /// Copies the corrupt `visits` to a new `visits.corrupt-<UTC time>`
    /// (never overwriting one) and makes the copy durable.
    fn keep_corrupt_copy(&self) -> Result<PathBuf, StoreError> {
        let content = fs::read(&self.visits).map_err(io_err("read", &self.visits))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        for attempt in 0u32.. {
            let name = match attempt {
                0 => format!("{CORRUPT_PREFIX}{stamp}"),
                n => format!("{CORRUPT_PREFIX}{stamp}-{n}"),
            };
            let path = self.dir.join(name);
            let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            };
            file.write_all(&content)
                .and_then(|()| file.sync_all())
                .map_err(io_err("write", &path))?;
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("fsync the data directory", &self.dir))?;
            return Ok(path);
        }
        unreachable!("the loop returns or runs forever")
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `visits` file's path.
    pub fn visits_path(&self) -> &Path {
        &self.visits
    }

    /// Reads the current count without locking (a missing file is 0).
    pub fn read_count(&self) -> Result<u64, StoreError> {
        let mut file = match File::open(&self.visits) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("open", &self.visits)(e)),
        };
        let mut content = Vec::with_capacity(format::MAX_FILE_LEN as usize + 1);
        (&mut file)
            .take(format::MAX_FILE_LEN + 1)
            .read_to_end(&mut content)
            .map_err(io_err("read", &self.visits))?;
        let parsed = if content.len() as u64 > format::MAX_FILE_LEN {
            let len = file
                .metadata()
                .map(|m| m.len())
                .unwrap_or(content.len() as u64);
            Err(FormatError::TooLong { len })
        } else {
            format::parse(&content)
        };
        parsed.map_err(|problem| StoreError::Corrupt {
            path: self.visits.clone(),
            problem,
        })
    }

    /// Durably adds `n` visits and returns the new total. `add(0)` rewrites
    /// the current count: a write probe.
    pub fn add(&self, n: u64) -> Result<u64, StoreError> {
        self.with_lock(|| {
            let count = self.read_count()?;
            self.fault(Step::Locked)?;
            let total = count.checked_add(n).ok_or_else(|| StoreError::Overflow {
                path: self.visits.clone(),
                count,
                add: n,
            })?;
            self.replace(total)?;
            Ok(total)
        })
    }

    fn fault(&self, step: Step) -> Result<(), StoreError> {
        match &self.fault {
            Some(hook) => {
                hook(step).map_err(io_err("continue (injected fault) with", &self.visits))
            }
            None => Ok(()),
        }
    }

    /// Runs `f` holding the exclusive lock on `visits.lock`, waiting at most
    /// `lock_timeout` for it. The lock is released when the file is closed,
    /// also if `f` fails.
    fn with_lock<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io_err("open the lock file", &self.lock))?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(100);
        let contended = fs2::lock_contended_error().raw_os_error();
        loop {
            // Lets the back-off test count attempts instead of timing them.
            #[cfg(test)]
            tests::LOCK_ATTEMPTS.with(|n| n.set(n.get() + 1));
            match fs2::FileExt::try_lock_exclusive(&file) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == contended => {
                    let waited = started.elapsed();
                    if waited >= self.lock_timeout {
                        return Err(StoreError::LockTimeout {
                            path: self.lock.clone(),
                            waited,
                        });
                    }
                    std::thread::sleep(pause.min(self.lock_timeout.saturating_sub(waited)));
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                Err(e) => return Err(io_err("lock", &self.lock)(e)),
            }
        }
        let result = f();
        // Closing the descriptor releases the lock too; unlocking first makes
        // the intent explicit and frees waiters a little sooner.
        let _ = fs2::FileExt::unlock(&file);
        result
    }

    /// Atomically replaces `visits` with `count`: temp file, fsync, rename,
    /// fsync of the folder. Must be called under the lock.
    fn replace(&self, count: u64) -> Result<(), StoreError> {
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(fs::Permissions::from_mode(0o644))
            .tempfile_in(&self.dir)
            .map_err(io_err("create a temporary file in", &self.dir))?;
        tmp.write_all(format::render(count).as_bytes())
            .map_err(io_err("write the temporary file for", &self.visits))?;
        self.fault(Step::TempWritten)?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("fsync the temporary file for", &self.visits))?;
        self.fault(Step::TempSynced)?;
        tmp.persist(&self.visits)
            .map_err(|e| io_err("rename the temporary file over", &self.visits)(e.error))?;
        self.fault(Step::Renamed)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync the data directory", &self.dir))?;
        self.fault(Step::DirSynced)?;
        Ok(())
    }

    /// Removes temporary files a crashed writer left behind. Called under
    /// the lock, so no live writer's file can be among them.
    fn remove_leftovers(&self) -> Result<(), StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            if entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
            {
                let path = entry.path();
                fs::remove_file(&path)
                    .map_err(io_err("remove the leftover temporary file", &path))?;
                tracing::warn!(path = %path.display(), "removed a temporary file left by an interrupted write");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::Mutex;

    const TIMEOUT: Duration = Duration::from_secs(5);

    thread_local! {
        /// Lock attempts made by [`Store::with_lock`] on this thread.
        pub(super) static LOCK_ATTEMPTS: Cell<u64> = const { Cell::new(0) };
    }

    fn read(dir: &Path) -> String {
        fs::read_to_string(dir.join(VISITS_FILE)).unwrap()
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect()
    }

    #[test]
    fn a_fresh_folder_is_created_and_starts_at_zero_with_a_readable_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let (_, count) = Store::open(&dir, TIMEOUT).unwrap();
        assert_eq!(count, 0);
        assert_eq!(read(&dir), "0\n");
    }

    #[test]
    fn adding_visits_is_written_as_one_number_and_a_newline() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(tmp.path(), TIMEOUT).unwrap();
        assert_eq!(store.add(1).unwrap(), 1);
        assert_eq!(store.add(41).unwrap(), 42);
        assert_eq!(read(tmp.path()), "42\n");
        assert!(temp_files(tmp.path()).is_empty());
    }

    #[test]
    fn a_write_rereads_the_file_that_another_store_moved_on() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, _) = Store::open(tmp.path(), TIMEOUT).unwrap();
        let (b, _) = Store::open(tmp.path(), TIMEOUT).unwrap();
        a.add(5).unwrap();
        assert_eq!(b.add(1).unwrap(), 6);
        assert_eq!(a.add(1).unwrap(), 7);
    }

    #[test]
    fn a_corrupt_file_is_refused_and_left_byte_for_byte_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(VISITS_FILE);
        let mut huge = b"1".repeat(10_000);
        huge.push(b'\n');
        for content in [
            &b"garbage\n"[..],
            b"",
            b"-3\n",
            b"18446744073709551616\n",
            b"12abc\n",
            &huge,
        ] {
            fs::write(&path, content).unwrap();
            let err = Store::open(tmp.path(), TIMEOUT).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert_eq!(fs::read(&path).unwrap(), content);
        }
    }

    #[test]
    fn a_path_that_is_a_file_is_not_a_data_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain");
        fs::write(&file, "x").unwrap();
        let err = Store::open(&file, TIMEOUT).unwrap_err();
        assert!(matches!(err, StoreError::NotADirectory(_)), "{err}");
    }

    #[test]
    fn leftover_temporary_files_are_removed_at_startup() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(format!("{TEMP_PREFIX}abc")), "99\n").unwrap();
        fs::write(tmp.path().join(VISITS_FILE), "3\n").unwrap();
        let (_, count) = Store::open(tmp.path(), TIMEOUT).unwrap();
        assert_eq!(count, 3);
        assert!(temp_files(tmp.path()).is_empty());
    }

    #[test]
    fn reaching_the_largest_count_is_an_error_not_a_wrap() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(VISITS_FILE), format!("{}\n", u64::MAX - 1)).unwrap();
        let (store, _) = Store::open(tmp.path(), TIMEOUT).unwrap();
        assert_eq!(store.add(1).unwrap(), u64::MAX);
        assert!(matches!(store.add(1), Err(StoreError::Overflow { .. })));
        assert_eq!(read(tmp.path()), format!("{}\n", u64::MAX));
    }

    #[test]
    fn a_held_lock_makes_a_write_time_out_without_touching_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(tmp.path(), Duration::from_millis(200)).unwrap();
        store.add(2).unwrap();
        let holder = File::create(tmp.path().join(LOCK_FILE)).unwrap();
        fs2::FileExt::lock_exclusive(&holder).unwrap();
        let err = store.add(1).unwrap_err();
        assert!(matches!(err, StoreError::LockTimeout { .. }), "{err}");
        fs2::FileExt::unlock(&holder).unwrap();
        assert_eq!(read(tmp.path()), "2\n");
        assert_eq!(store.add(1).unwrap(), 3);
    }

    #[test]
    fn an_unopenable_visits_file_refuses_to_start_and_is_left_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(VISITS_FILE);
        // A symlink loop cannot be opened, not even by root.
        std::os::unix::fs::symlink(VISITS_FILE, &path).unwrap();
        let err = Store::open(tmp.path(), TIMEOUT).unwrap_err();
        assert!(
            matches!(err, StoreError::Io { action: "open", .. }),
            "{err}"
        );
        assert_eq!(fs::read_link(&path).unwrap(), Path::new(VISITS_FILE));
        let at = Store::at(tmp.path(), TIMEOUT).unwrap();
        assert!(
            at.read_count().is_err(),
            "an unopenable file read as a count"
        );
    }

    #[test]
    fn an_unreadable_visits_file_refuses_to_start_and_is_left_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(VISITS_FILE);
        fs::write(&path, "41\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        if File::open(&path).is_err() {
            // Mode 000 stops every user but root at the open.
            let err = Store::open(tmp.path(), TIMEOUT).unwrap_err();
            assert!(
                matches!(err, StoreError::Io { action: "open", .. }),
                "{err}"
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(read(tmp.path()), "41\n");
        } else {
            // Root opens anything, so `visits` is a folder instead: it opens, and the read
            // fails (EISDIR), as any other unreadable file would.
            fs::remove_file(&path).unwrap();
            fs::create_dir(&path).unwrap();
            fs::write(path.join("inside"), "41\n").unwrap();
            let err = Store::open(tmp.path(), TIMEOUT).unwrap_err();
            assert!(
                matches!(err, StoreError::Io { action: "read", .. }),
                "{err}"
            );
            assert_eq!(fs::read_to_string(path.join("inside")).unwrap(), "41\n");
        }
    }

    #[test]
    fn a_data_folder_that_cannot_be_inspected_is_reported_not_created() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain");
        fs::write(&plain, "x").unwrap();
        let below = plain.join("data");
        let errors = [
            Store::open(&below, TIMEOUT).unwrap_err(),
            Store::at(&below, TIMEOUT).unwrap_err(),
        ];
        for err in errors {
            let action = match &err {
                StoreError::Io { action, .. } => *action,
                _ => "",
            };
            assert_eq!(action, "inspect the data directory", "{err}");
        }
        assert_eq!(fs::read(&plain).unwrap(), b"x");
    }

    #[test]
    fn a_missing_folder_is_missing_for_the_operator_commands() {
        let tmp = tempfile::tempdir().unwrap();
        let absent = tmp.path().join("absent");
        let err = Store::at(&absent, TIMEOUT).unwrap_err();
        assert!(matches!(err, StoreError::Missing(_)), "{err}");
        let file = tmp.path().join("plain");
        fs::write(&file, "x").unwrap();
        let err = Store::at(&file, TIMEOUT).unwrap_err();
        assert!(matches!(err, StoreError::NotADirectory(_)), "{err}");
        assert!(!absent.exists(), "Store::at created the folder");
    }

    /// `visits` is read through a bounded reader: a file one byte longer
    /// than the longest count must be refused even when its first bytes
    /// are a valid count, and the longest count itself accepted.
    #[test]
    fn the_length_bound_of_the_visits_file_is_exact() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(VISITS_FILE);
        let longest = format::render(u64::MAX);
        fs::write(&path, &longest).unwrap();
        let (_, count) = Store::open(tmp.path(), TIMEOUT).unwrap();
        assert_eq!(count, u64::MAX);

        for extra in [&b"7"[..], b"\n", &[b'1'; 10_000]] {
            let content = [longest.as_bytes(), extra].concat();
            fs::write(&path, &content).unwrap();
            match Store::open(tmp.path(), TIMEOUT).unwrap_err() {
                StoreError::Corrupt {
                    problem: FormatError::TooLong { len },
                    ..
                } => assert_eq!(len, content.len() as u64),
                other => panic!("{} bytes: {other}", content.len()),
            }
            assert_eq!(fs::read(&path).unwrap(), content);
        }
    }

    #[test]
    fn a_lock_released_within_the_timeout_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(tmp.path(), TIMEOUT).unwrap();
        let holder = File::create(tmp.path().join(LOCK_FILE)).unwrap();
        fs2::FileExt::lock_exclusive(&holder).unwrap();
        let release = std::thread::spawn(move || {
            // A deliberate pause, what the test is about: the lock is held a
            // while (well within TIMEOUT) before it is released.
            std::thread::sleep(Duration::from_millis(100));
            fs2::FileExt::unlock(&holder).unwrap();
        });
        assert_eq!(store.add(1).unwrap(), 1);
        release.join().unwrap();
    }

    /// A waiting writer sleeps between attempts, doubling the pause up to
    /// 5 ms: over a 500 ms wait that is about a hundred attempts, where a
    /// spinning one makes many thousands. Counted, not timed.
    #[test]
    fn waiting_for_a_held_lock_backs_off_instead_of_spinning() {
        let tmp = tempfile::tempdir().unwrap();
        let wait = Duration::from_millis(500);
        let (store, _) = Store::open(tmp.path(), wait).unwrap();
        let holder = File::create(tmp.path().join(LOCK_FILE)).unwrap();
        fs2::FileExt::lock_exclusive(&holder).unwrap();
        LOCK_ATTEMPTS.with(|n| n.set(0));
        let err = store.add(1).unwrap_err();
        assert!(matches!(err, StoreError::LockTimeout { .. }), "{err}");
        let attempts = LOCK_ATTEMPTS.with(Cell::get);
        let most = 10 + (wait.as_millis() / 5) as u64;
        assert!(
            (2..=most).contains(&attempts),
            "{attempts} lock attempts in {wait:?}, expected 2 to {most}"
        );
    }

    /// Every failure's reason says what kind it is, in the system's words
    /// where there are some, and never the path the log gets.
    #[test]
    fn a_failure_reason_says_what_failed_without_a_path() {
        let path = PathBuf::from("/secret/volume/visits");
        let cases = [
            (StoreError::NotADirectory(path.clone()), "not a directory"),
            (
                StoreError::Corrupt {
                    path: path.clone(),
                    problem: FormatError::Empty,
                },
                "corrupt: the file is empty",
            ),
            (StoreError::Missing(path.clone()), "does not exist"),
            (
                StoreError::NeedsForce {
                    what: "lower the count".into(),
                    current: "5".into(),
                },
                "lower the count without --force",
            ),
            (
                StoreError::LockTimeout {
                    path: path.clone(),
                    waited: Duration::from_millis(300),
                },
                "after 300ms waiting for the lock",
            ),
            (
                StoreError::Overflow {
                    path: path.clone(),
                    count: 7,
                    add: 1,
                },
                "count 7 cannot grow",
            ),
            (
                io_err("fsync the data directory", &path)(io::Error::from_raw_os_error(28)),
                "failed: No space left on device",
            ),
        ];
        for (error, words) in cases {
            let reason = error.reason();
            assert!(reason.contains(words), "{reason:?} lacks {words:?}");
            assert!(!reason.contains("/secret"), "{reason:?} names a path");
        }
    }

    #[test]
    fn a_store_names_its_folder_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(tmp.path(), TIMEOUT).unwrap();
        assert_eq!(store.dir(), tmp.path());
        assert_eq!(store.visits_path(), tmp.path().join(VISITS_FILE));
        let debug = format!("{store:?}");
        assert!(debug.contains(&tmp.path().display().to_string()), "{debug}");
    }

    #[test]
    fn setting_the_count_raises_freely_and_lowers_only_with_force() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(tmp.path(), TIMEOUT).unwrap();
        store.add(5).unwrap();
        let raised = store.set(8, false).unwrap();
        assert_eq!(
            raised,
            SetOutcome {
                previous: Some(5),
                kept: None
            }
        );
        let same = store.set(8, false).unwrap();
        assert_eq!(same.previous, Some(8), "the same count needs no force");
        let err = store.set(3, false).unwrap_err();
        assert!(matches!(err, StoreError::NeedsForce { .. }), "{err}");
        assert_eq!(read(tmp.path()), "8\n");
        assert_eq!(store.set(3, true).unwrap().previous, Some(8));
        assert_eq!(read(tmp.path()), "3\n");
    }

    #[test]
    fn a_corrupt_file_is_replaced_only_with_force_and_kept_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(VISITS_FILE);
        fs::write(&path, "garbage\n").unwrap();
        let store = Store::at(tmp.path(), TIMEOUT).unwrap();
        let err = store.set(7, false).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"garbage\n");
        let outcome = store.set(7, true).unwrap();
        assert_eq!(outcome.previous, None);
        let kept = outcome.kept.expect("the corrupt file was not kept");
        assert_eq!(kept.parent(), Some(tmp.path()));
        assert!(
            kept.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(CORRUPT_PREFIX),
            "{}",
            kept.display()
        );
        assert_eq!(fs::read(&kept).unwrap(), b"garbage\n");
        assert_eq!(read(tmp.path()), "7\n");
    }

    /// Two copies kept within one millisecond must not overwrite each
    /// other. Every name a window of the clock can stamp is taken first and
    /// the copy is made inside that window, so it must take the first free
    /// suffix. A copy stamped outside the window (a machine so loaded that
    /// the window passed) proves nothing, and the test tries again.
    #[test]
    fn a_kept_corrupt_copy_never_overwrites_an_earlier_one() {
        let collided = (0..5).any(|_| kept_copy_collides_with_every_stamp_taken());
        assert!(collided, "no copy was made inside its window in five tries");
    }

    /// Takes every corrupt-copy name of a 500 ms window starting 3 s from now
    /// (taking the names can itself take seconds on a machine under load),
    /// waits for the window, forces a count over a corrupt file, and says
    /// whether the kept copy was stamped inside the window.
    fn kept_copy_collides_with_every_stamp_taken() -> bool {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(VISITS_FILE), "oops\n").unwrap();
        let window = chrono::TimeDelta::milliseconds(500);
        let start = chrono::Utc::now() + chrono::TimeDelta::seconds(3);
        let taken: Vec<PathBuf> = (0..window.num_milliseconds())
            .map(|ms| {
                let stamp =
                    (start + chrono::TimeDelta::milliseconds(ms)).format("%Y%m%dT%H%M%S%.3fZ");
                let path = tmp.path().join(format!("{CORRUPT_PREFIX}{stamp}"));
                fs::write(&path, "earlier\n").unwrap();
                path
            })
            .collect();
        // A deliberate pause, what the test is about: the clock reaches the window.
        std::thread::sleep((start - chrono::Utc::now()).to_std().unwrap_or_default());
        let store = Store::at(tmp.path(), TIMEOUT).unwrap();
        let kept = store.set(1, true).unwrap().kept.unwrap();
        assert_eq!(fs::read(&kept).unwrap(), b"oops\n");
        for path in &taken {
            assert_eq!(fs::read(path).unwrap(), b"earlier\n", "{}", path.display());
        }
        let name = kept.file_name().unwrap().to_string_lossy().into_owned();
        name.ends_with("-1")
    }

    /// Interrupts a write after each step in turn and checks that `visits`
    /// always holds either the old or the new count, never anything else,
    /// and that a restart cleans up and goes on from what is on disk.
    #[test]
    fn an_interrupted_write_leaves_either_the_old_or_the_new_count() {
        for fail_at in Step::ALL {
            let tmp = tempfile::tempdir().unwrap();
            let armed = Arc::new(Mutex::new(false));
            let hook_armed = Arc::clone(&armed);
            let hook: FaultHook = Arc::new(move |step| {
                if *hook_armed.lock().unwrap() && step == fail_at {
                    Err(io::Error::other(format!("injected fault after {step:?}")))
                } else {
                    Ok(())
                }
            });
            let (store, _) = Store::open_with_fault(tmp.path(), TIMEOUT, Some(hook)).unwrap();
            store.add(10).unwrap();
            *armed.lock().unwrap() = true;
            let err = store.add(5).unwrap_err();
            assert!(err.to_string().contains("injected fault"), "{err}");
            let after = read(tmp.path());
            let expected = if matches!(fail_at, Step::Renamed | Step::DirSynced) {
                "15\n"
            } else {
                "10\n"
            };
            assert_eq!(after, expected, "interrupted after {fail_at:?}");
            let (_, count) = Store::open(tmp.path(), TIMEOUT).unwrap();
            assert_eq!(format::render(count), expected);
            assert!(temp_files(tmp.path()).is_empty(), "after {fail_at:?}");
        }
    }
}
