//! The binary's commands other than `serve`: what an operator runs with
//! `kubectl exec <pod> -- moscow-time <command>` (the image has no shell).
//!
//! They read the same settings as the server (flags, environment, config
//! file), so in a pod they need no arguments, and they use the store's own
//! read and write, so they are as safe beside a running server as a visit.

use std::io::Write;

use crate::config::Settings;
use crate::shutdown::Signals;
use crate::store::{Store, StoreError};

/// `count`: validates `visits` exactly as startup does and prints the
/// count. Never writes and takes no lock (the file is only ever replaced
/// whole), so it works on a read-only volume and beside a running server.
pub fn count(settings: &Settings, out: &mut impl Write) -> Result<(), StoreError> {
    let count = Store::at(&settings.data_dir, settings.write_timeout)?.read_count()?;
    writeln!(out, "{count}").map_err(stdout_error)
}

/// `set-count N`: durably sets the count; prints the old and new values.
pub fn set_count(
    settings: &Settings,
    count: u64,
    force: bool,
    out: &mut impl Write,
) -> Result<(), StoreError> {
    let outcome = Store::at(&settings.data_dir, settings.write_timeout)?.set(count, force)?;
    if let Some(kept) = &outcome.kept {
        writeln!(out, "kept the corrupt file as {}", kept.display()).map_err(stdout_error)?;
    }
    let previous = outcome
        .previous
        .map_or_else(|| "corrupt".to_owned(), |n| n.to_string());
    writeln!(out, "visits: {previous} -> {count}").map_err(stdout_error)
}

/// `idle`: does nothing until SIGTERM or SIGINT, then returns. What a pod
/// in diagnostic mode runs, so that an operator can exec into it while the
/// server itself would refuse the data.
pub async fn idle() -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    tracing::info!("idle: waiting for SIGTERM or SIGINT");
    let signal = signals.next().await;
    tracing::info!(%signal, "idle: stopping");
    Ok(())
}

fn stdout_error(source: std::io::Error) -> StoreError {
    StoreError::Io {
        action: "print to",
        path: "standard output".into(),
        source,
    }
}
