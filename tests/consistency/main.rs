//! Checks that keep the repository consistent with itself: no import
//! cycles between the modules of `src/`, and every copy of the settings
//! (README table, chart schema, `k8s/` ConfigMap) agreeing with their one
//! definition, the `Options` struct in `src/config/options.rs`.

/// `use crate::…` edges between the modules of `src/` form no cycle.
mod cycles;
/// The README, the chart schema and `k8s/config.json` match the settings.
mod settings;
