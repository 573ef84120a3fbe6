//! # moscow-time
//!
//! A small HTTP service that shows the current time in Moscow (or any IANA
//! zone) and durably counts every page view in a plain-text file, built to
//! run as a Kubernetes StatefulSet with one volume per pod.
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | flags, environment, JSON file; validated once |
//! | [`telemetry`] | structured logs |
//! | [`store`] | the `visits` file: lock, atomic replace, group commit |
//! | [`clock`] | the time in the configured zone |
//! | [`page`] | the HTML page, built once, rendered per visit |
//! | [`peers`] | every instance's count, for the cluster view |
//! | [`metrics`] | Prometheus metrics |
//! | [`middleware`] | size limits, request metrics and logs, security headers |
//! | [`routes`] | the HTTP endpoints |
//! | [`error`] | how failures become answers |
//! | [`startup`] | wiring and lifecycle |

pub mod clock;
pub mod config;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod page;
pub mod peers;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
