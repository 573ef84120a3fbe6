//! HTTP and process-level tests of moscow-time, linked into one binary.
//!
//! In-process tests run the real [`Application`] on port 0 with a temporary
//! data folder; process tests run the real `moscow-time` binary the same way.

/// Several instances: the cluster view, dead and hung peers.
mod cluster;
/// The operator commands: count, set-count, idle.
mod commands;
/// Opt-in fault injection.
mod faults;
/// `/api/time`, the page's clock, headers and error answers.
mod http;
/// Restarts, SIGTERM, several processes on one folder, refusing bad files.
mod lifecycle;
/// `/metrics` against the file and promtool.
mod metrics;
/// OpenTelemetry traces through a collector in the test.
mod traces;
/// Counting: a visit is durable, only `GET /` counts, concurrency is exact.
mod visits;
