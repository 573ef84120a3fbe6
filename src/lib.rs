//! # moscow-time
//!
//! A small HTTP service that shows the current time in Moscow (or any IANA
//! zone) and durably counts every page view in a plain-text file, built to
//! run as a Kubernetes StatefulSet with one volume per pod.
//!
//! Dependencies point one way, from the top of this table to the bottom: a
//! module uses only modules below it. `startup` wires everything;
//! `middleware` and `routes` depend on `state` and the domain modules;
//! `store` depends on nothing HTTP. (`tests/consistency/` checks that there
//! is no cycle.)
//!
//! | module | concern |
//! |---|---|
//! | [`startup`] | wiring: open the store, bind, build the app, run it |
//! | [`commands`] | the binary's commands other than serving |
//! | [`middleware`] | size limits, request metrics and logs, security headers |
//! | [`routes`] | the HTTP endpoints and how failures become answers |
//! | [`state`] | what the handlers share, and the one readiness answer |
//! | [`shutdown`] | signals, the drain state and the graceful drain sequence |
//! | [`page`] | the HTML page (with its style sheet and script), built once, rendered per visit |
//! | [`clock`] | the time in the configured zone |
//! | [`cluster`] | the cluster view: every instance's count, from the peers |
//! | [`metrics`] | the Prometheus registry and the HTTP metrics |
//! | [`faults`] | opt-in fault injection, through the store's fault seam |
//! | `test_hooks` | with the `test-hooks` feature only: breaking the binary on purpose in tests |
//! | [`store`] | the `visits` file: lock, atomic replace, group commit |
//! | [`telemetry`] | structured logs |
//! | [`traces`] | OpenTelemetry traces, only when an OTLP endpoint is configured |
//! | [`config`] | every setting, defined once: flags, environment, JSON file |
//! | [`errors`] | errors as text, with their causes, for the logs |

pub mod clock;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod errors;
pub mod faults;
pub mod metrics;
pub mod middleware;
pub mod page;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod traces;
