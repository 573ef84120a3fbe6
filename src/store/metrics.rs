//! What the store reports to Prometheus. The metrics are plain `prometheus`
//! handles; whoever serves them registers them ([`StoreMetrics::register`]).

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, Registry};

/// One durable write is an fsync or two: ~0.1 ms on tmpfs, ~1 ms on a local
/// disk, tens of ms on network block storage.
const PERSIST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512,
    1.0, 5.0,
];
/// Visits per durable write: powers of two up to the default largest batch.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The store's metrics.
#[derive(Clone)]
pub struct StoreMetrics {
    /// The persisted count, including visits from earlier runs.
    pub visits_total: IntCounter,
    /// Time of one durable write (lock, read, write, fsync, rename, fsync).
    pub persist_duration: Histogram,
    /// Visits persisted per durable write.
    pub persist_batch_size: Histogram,
    /// Durable writes that failed.
    pub persist_errors: IntCounter,
    /// Visits persisted after their visitor stopped waiting for the write.
    pub visits_late: IntCounter,
    /// How long the durable write in flight has taken so far (0 when none
    /// is), as of the last scrape: it grows without end on a hung volume.
    pub persist_in_flight: Gauge,
}

impl StoreMetrics {
    /// Creates the metrics, not yet registered anywhere.
    pub fn new() -> prometheus::Result<Self> {
        Ok(StoreMetrics {
            visits_total: IntCounter::new(
                "moscow_time_visits_total",
                "Visits persisted in the visits file, including earlier runs.",
            )?,
            persist_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "moscow_time_persist_duration_seconds",
                    "Time of one durable write of the visits file.",
                )
                .buckets(PERSIST_BUCKETS.to_vec()),
            )?,
            persist_batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "moscow_time_persist_batch_size",
                    "Visits persisted by one durable write.",
                )
                .buckets(BATCH_BUCKETS.to_vec()),
            )?,
            persist_errors: IntCounter::new(
                "moscow_time_persist_errors_total",
                "Durable writes of the visits file that failed.",
            )?,
            visits_late: IntCounter::new(
                "moscow_time_visits_late_total",
                "Visits persisted after their visitor stopped waiting (answered 503 at the \
                 write timeout, or gone); they are in moscow_time_visits_total.",
            )?,
            persist_in_flight: Gauge::new(
                "moscow_time_persist_in_flight_seconds",
                "How long the durable write in flight has taken so far; 0 when none is.",
            )?,
        })
    }

    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.visits_total.clone()))?;
        registry.register(Box::new(self.persist_duration.clone()))?;
        registry.register(Box::new(self.persist_batch_size.clone()))?;
        registry.register(Box::new(self.persist_errors.clone()))?;
        registry.register(Box::new(self.visits_late.clone()))?;
        registry.register(Box::new(self.persist_in_flight.clone()))
    }
}
