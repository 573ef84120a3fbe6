//! Bounded waits for events, and free ports. A deadline here only fires when
//! the awaited thing never happens: it is generous, never a speed claim.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it is true, at most `timeout`; whether it became true.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for an async check, without blocking the runtime.
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `n` distinct loopback ports that were free a moment ago, for instances
/// that must know each other's addresses before they start.
pub fn free_ports(n: usize) -> Vec<u16> {
    // All bound at once, so the n ports are distinct.
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}
