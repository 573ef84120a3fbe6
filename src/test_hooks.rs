//! Hooks that let the tests break the binary on purpose, where no fault a
//! user can inject reaches: a visit writer that panics. Compiled only with
//! the `test-hooks` feature, which the test support crate turns on; a
//! release build never has it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{FaultHook, Step};

/// The variable naming the durable write (1 is the first after start-up:
/// a visit's or a probe's) in which the visit writer panics.
pub const WRITER_PANIC_AT: &str = "TEST_HOOK_WRITER_PANIC_AT";

/// `fault`, plus a panic in the write [`WRITER_PANIC_AT`] names, if set.
pub fn wrap(fault: Option<FaultHook>) -> Option<FaultHook> {
    let Some(at) = std::env::var(WRITER_PANIC_AT)
        .ok()
        .and_then(|at| at.parse::<u64>().ok())
    else {
        return fault;
    };
    let writes = AtomicU64::new(0);
    Some(Arc::new(move |step| {
        if step == Step::Locked && writes.fetch_add(1, Ordering::AcqRel) + 1 == at {
            panic!("injected by the test hook {WRITER_PANIC_AT}={at}");
        }
        fault.as_ref().map_or(Ok(()), |fault| fault(step))
    }))
}
