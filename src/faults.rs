//! Opt-in fault injection, so that learners can break a pod on purpose and
//! watch probes, alerts and Kubernetes react. Off by default: unless
//! `--fault-injection` is set, none of this is reachable (the `/faults`
//! routes do not exist).
//!
//! The disk and stall faults go through the store's own fault seam
//! ([`FaultHook`]), so everything downstream (503s, metrics, readiness) is
//! the real code path. Under a disk fault every durable write, the writer's
//! recovery probe included, fails as on a full disk; under a stall every
//! durable write blocks before its fsync until the stall is cleared, as on a
//! hung network volume. Liveness is never affected.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::store::{FaultHook, Step};

/// The longest latency that may be injected, in ms.
pub const MAX_LATENCY_MS: u64 = 10_000;

/// The faults in force. Shared by the store's hook and the routes.
#[derive(Debug, Default)]
pub struct Faults {
    disk: AtomicBool,
    unready: AtomicBool,
    latency_ms: AtomicU64,
    stall: Stall,
}

/// The stall fault: while `on`, a durable write waits on `cleared`.
#[derive(Debug, Default)]
struct Stall {
    state: Mutex<StallState>,
    cleared: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct StallState {
    on: bool,
    /// Writes held by the stall right now.
    held: u64,
}

/// What `GET /faults` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Active {
    /// Durable writes fail as on a full disk.
    pub disk: bool,
    /// Readiness fails.
    pub unready: bool,
    /// Page views are delayed by this many ms (0: not at all).
    pub latency_ms: u64,
    /// Durable writes block until the stall is cleared.
    pub stall: bool,
}

impl Faults {
    /// A hook for [`Store::open_with_fault`](crate::store::Store::open_with_fault)
    /// that fails every write while a disk fault is in force, and holds every
    /// write before its fsync while a stall is.
    pub fn store_hook(self: &Arc<Self>) -> FaultHook {
        let faults = Arc::clone(self);
        Arc::new(move |step| match step {
            Step::Locked if faults.disk.load(Ordering::Acquire) => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected fault)",
            )),
            Step::TempWritten => {
                faults.hold_while_stalled();
                Ok(())
            }
            _ => Ok(()),
        })
    }

    /// Blocks while a stall is in force, as an fsync on a hung volume does.
    fn hold_while_stalled(&self) {
        let stall = &self.stall;
        let mut state = stall.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.on {
            return;
        }
        state.held += 1;
        let mut state = stall
            .cleared
            .wait_while(state, |s| s.on)
            .unwrap_or_else(|p| p.into_inner());
        state.held -= 1;
    }

    /// Makes every durable write fail, or stops doing so.
    pub fn set_disk(&self, on: bool) {
        self.disk.store(on, Ordering::Release);
    }

    /// Makes every durable write block before its fsync until cleared, or
    /// clears the stall and lets the held writes go on.
    pub fn set_stall(&self, on: bool) {
        let mut state = self.stall.state.lock().unwrap_or_else(|p| p.into_inner());
        state.on = on;
        if !on {
            self.stall.cleared.notify_all();
        }
    }

    /// How many durable writes the stall holds right now.
    pub fn stalled_writes(&self) -> u64 {
        self.stall
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .held
    }

    /// Makes readiness fail, or stops doing so.
    pub fn set_unready(&self, on: bool) {
        self.unready.store(on, Ordering::Release);
    }

    /// Whether readiness must fail.
    pub fn unready(&self) -> bool {
        self.unready.load(Ordering::Acquire)
    }

    /// Delays page views by `ms`, 1 to [`MAX_LATENCY_MS`]; anything else is
    /// refused and changes nothing.
    pub fn set_latency_ms(&self, ms: u64) -> Result<(), String> {
        if !(1..=MAX_LATENCY_MS).contains(&ms) {
            return Err(format!(
                "ms must be a whole number from 1 to {MAX_LATENCY_MS}"
            ));
        }
        self.latency_ms.store(ms, Ordering::Release);
        Ok(())
    }

    /// Stops delaying page views.
    pub fn clear_latency(&self) {
        self.latency_ms.store(0, Ordering::Release);
    }

    /// The delay to add to a page view, if any.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// What is in force.
    pub fn active(&self) -> Active {
        Active {
            disk: self.disk.load(Ordering::Acquire),
            unready: self.unready(),
            latency_ms: self.latency_ms.load(Ordering::Acquire),
            stall: self
                .stall
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .on,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_fault_fails_writes_at_the_lock_and_nowhere_else() {
        let faults = Arc::new(Faults::default());
        let hook = faults.store_hook();
        assert!(hook(Step::Locked).is_ok());
        faults.set_disk(true);
        let error = hook(Step::Locked).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(hook(Step::Renamed).is_ok(), "a started write is never torn");
        faults.set_disk(false);
        assert!(hook(Step::Locked).is_ok());
    }

    /// The stall holds a write at the step before its fsync, and only there,
    /// until it is cleared; what is held is counted, so the test waits for
    /// that instead of for time.
    #[test]
    fn a_stall_holds_writes_before_the_fsync_until_it_is_cleared() {
        let faults = Arc::new(Faults::default());
        let hook = faults.store_hook();
        assert!(hook(Step::TempWritten).is_ok(), "no stall, no wait");
        faults.set_stall(true);
        assert!(faults.active().stall);
        for step in [
            Step::Locked,
            Step::TempSynced,
            Step::Renamed,
            Step::DirSynced,
        ] {
            assert!(hook(step).is_ok(), "{step:?} is not held");
        }
        let held = std::thread::spawn({
            let hook = Arc::clone(&hook);
            move || hook(Step::TempWritten)
        });
        let patience = std::time::Instant::now() + Duration::from_secs(5);
        while faults.stalled_writes() == 0 {
            assert!(
                std::time::Instant::now() < patience,
                "the write never reached the stall"
            );
            std::thread::yield_now();
        }
        assert!(!held.is_finished(), "a stalled write went on");
        faults.set_stall(false);
        assert!(held.join().unwrap().is_ok());
        assert_eq!(faults.stalled_writes(), 0);
        assert!(!faults.active().stall);
    }

    #[test]
    fn latency_is_bounded_and_zero_means_none() {
        let faults = Faults::default();
        assert_eq!(faults.latency(), None);
        faults.set_latency_ms(250).unwrap();
        assert_eq!(faults.latency(), Some(Duration::from_millis(250)));
        assert!(faults.set_latency_ms(MAX_LATENCY_MS + 1).is_err());
        assert!(faults.set_latency_ms(0).is_err());
        assert_eq!(
            faults.active().latency_ms,
            250,
            "a refused value changes nothing"
        );
    }
}
