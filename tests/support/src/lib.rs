//! What every Rust test suite of moscow-time shares: the app in-process,
//! the real binary as a child process, HTTP clients (async, and raw bytes
//! over TCP), the metrics parser, bounded waits and free ports, and the
//! machine (mounts, root, knobs).
//!
//! Every wait is bounded: a server that does not start, answer or exit in
//! time fails the test instead of hanging it.

pub mod app;
pub mod metrics;
pub mod process;
pub mod raw_http;
pub mod system;
pub mod wait;

pub use app::*;
pub use metrics::metric;
pub use process::*;
pub use raw_http::*;
pub use system::*;
pub use wait::*;
