//! A power-loss file system for tests: a FUSE mount, served by a thread of
//! the test process, that records every call changing what a disk holds,
//! and a disk model that says what a power cut after any one of those
//! calls would leave.
//!
//! `kill -9` keeps everything the kernel already accepted, so it cannot
//! show a missing fsync. Here the program under test runs on an ordinary
//! looking folder ([`memfs`]) while its calls are logged; afterwards
//! [`disk::for_each_cut`] rebuilds, for every prefix of the log, the folder
//! a power cut would leave in several ways, and the test checks each one.
//! A chosen image can be mounted again with [`PowerFs::mount`] to "reboot"
//! onto it. The approach is ALICE's (OSDI 2014: replay every prefix of the
//! recorded calls) with LazyFS's idea of a file system that forgets what was
//! not fsynced; unlike LazyFS, renames and folder fsyncs are modelled.
//!
//! Needs root and `/dev/fuse` (the mount goes through mount(2), no libfuse
//! or fusermount); [`unavailable`] says why not when they are missing.

pub mod disk;
pub mod memfs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use disk::{Image, Recording};
use memfs::{Journal, RecordingFs};

/// Why a power-loss test cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        return Some("not running as root (mounting a FUSE file system needs it)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    None
}

/// A mounted recording file system; unmounted on drop, also when a test
/// panics. Drop (or kill) every process using it first.
pub struct PowerFs {
    path: PathBuf,
    journal: Arc<Journal>,
    session: Option<fuser::BackgroundSession>,
    _dir: tempfile::TempDir,
}

impl PowerFs {
    /// Mounts a fresh file system holding `files` (an [`Image`]: paths
    /// relative to the mount, `path/` for a folder), all of it durable, as
    /// a disk after a reboot would.
    pub fn mount(files: &Image) -> Result<PowerFs, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a mount point: {e}"))?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| format!("cannot make {}: {e}", path.display()))?;
        let (fs, journal) = RecordingFs::new(files);
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("powerfs".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        // One thread: calls are handled, and logged, one at a time.
        config.n_threads = Some(1);
        let session = fuser::spawn_mount(fs, &path, &config)
            .map_err(|e| format!("cannot mount FUSE on {}: {e}", path.display()))?;
        Ok(PowerFs {
            path,
            journal,
            session: Some(session),
            _dir: dir,
        })
    }

    /// The mounted folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The live call log, to read how far it got from other threads.
    pub fn journal(&self) -> Arc<Journal> {
        Arc::clone(&self.journal)
    }

    /// The initial files and every call logged so far.
    pub fn recording(&self) -> Recording {
        Recording {
            initial: self.journal.initial.clone(),
            calls: self.journal.calls(),
        }
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if session.umount_and_join().is_err() {
            // Still busy (a process holds a file open): detach it, so that
            // nothing is left mounted; the serving thread ends with the
            // last user.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}
