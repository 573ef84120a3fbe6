//! Opt-in fault injection, so that learners can break a pod on purpose and
//! watch probes, alerts and Kubernetes react. Off by default: unless
//! `--fault-injection` is set, none of this is reachable (the `/faults`
//! routes do not exist).
//!
//! A disk fault goes through the store's own fault seam
//! ([`FaultHook`]): every durable write, the writer's recovery probe
//! included, fails as on a full disk, so everything downstream (503s,
//! `moscow_time_persist_errors_total`, readiness) is the real code path.
//! Liveness is never affected.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
}

impl Faults {
    /// A hook for [`Store::open_with_fault`](crate::store::Store::open_with_fault)
    /// that fails every write while a disk fault is in force.
    pub fn store_hook(self: &Arc<Self>) -> FaultHook {
        let faults = Arc::clone(self);
        Arc::new(move |step| {
            if step == Step::Locked && faults.disk.load(Ordering::Acquire) {
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left on device (injected fault)",
                ))
            } else {
                Ok(())
            }
        })
    }

    /// Makes every durable write fail, or stops doing so.
    pub fn set_disk(&self, on: bool) {
        self.disk.store(on, Ordering::Release);
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
