//! Group commit: many concurrent visits, one durable write.
//!
//! An fsync costs about a millisecond here, so a counter that fsyncs once per
//! visit tops out near a thousand visits a second. Instead, each visit is a
//! message on a channel to one writer thread; the writer takes every visit
//! that is waiting (up to `max_batch`), persists them with a single
//! [`Store::add`], and only then answers each waiting visitor with its own
//! number. Visits that arrive while a write is in flight simply wait for the
//! next one, so the batch grows with the load and the cost of an fsync is
//! shared by everybody in it.
//!
//! A failed write answers every visitor in that batch with an error (nobody
//! is told their visit counted), marks the service not ready, and the writer
//! then retries a write probe every second while idle, so readiness recovers
//! on its own when the disk does, even with no traffic routed to the pod.
//!
//! A writer that dies (a panic: a bug) cannot count again, so it must not
//! look alive: it logs the cause at once, readiness fails from then on with
//! that cause, every visit is refused, and [`Committer::writer_died`] tells
//! whoever runs the process, which then exits non-zero so that it is
//! restarted.
//!
//! A write that never returns (a hung network volume: the fsync blocks in
//! the kernel, with no error) must not hold visitors forever. Each visitor
//! waits at most the write timeout for its answer, queue included, and is
//! then answered with an error; once the write in flight is older than the
//! write timeout, new visits are refused at once instead of queued, so the
//! queue stays as small as the number of visitors that came within one
//! timeout. A visitor that stopped waiting is dropped from the queue and
//! never written. One that was already in the write in flight is persisted
//! when the write returns, although its visitor was refused: the count then
//! says more than the 200 answers did, by exactly
//! `moscow_time_visits_late_total`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::{Store, StoreError, StoreMetrics};
use crate::errors::error_chain;

/// How often an unhealthy writer retries a write probe while idle.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why a visit was not recorded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VisitError {
    /// The durable write of the batch failed; the visit did not count.
    #[error("the visit was not recorded")]
    NotRecorded(#[source] Arc<StoreError>),
    /// No durable write answered within the write timeout. The visit is
    /// written later only if it was in the write in flight (counted in
    /// `moscow_time_visits_late_total`); otherwise it is dropped unwritten.
    #[error("no durable write finished within {0:?}")]
    TimedOut(Duration),
    /// A durable write has been in flight for longer than the write timeout
    /// (a hung volume): the visit was refused at once, not queued.
    #[error("a durable write has been in flight for {0:?}, longer than the write timeout")]
    Stalled(Duration),
    /// The service is shutting down and takes no more visits.
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Whether the counter can take visits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The last write (or the start-up probe) succeeded.
    Ready,
    /// Not ready, with the reason.
    NotReady(String),
}

/// Settings of the writer.
#[derive(Debug, Clone, Copy)]
pub struct CommitterConfig {
    /// The most visits persisted by one write; `1` disables group commit.
    pub max_batch: usize,
    /// The longest a visit waits for its durable write, queue included. A
    /// write in flight for longer than this makes the service not ready and
    /// refuses new visits at once (a hung fsync, such as on a dead network
    /// volume, never returns an error by itself).
    pub write_timeout: Duration,
}

type Reply = oneshot::Sender<Result<u64, VisitError>>;

/// A visitor waiting for its number, with its request's span (a no-op
/// span unless traces are recorded), so the durable write that carries the
/// visit can link to it.
struct Waiting {
    reply: Reply,
    span: tracing::Span,
}

enum Message {
    Visit(Waiting),
    Stop,
}

/// What the writer knows of itself and the data folder: one state, which
/// readiness reads and the process watches for [`WriterState::Died`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum WriterState {
    /// The last write (or the start-up write) succeeded.
    Healthy,
    /// The last write failed, with its reason (no paths: readiness tells
    /// it to anyone); the idle writer probes.
    Failing(String),
    /// The writer was stopped on purpose and takes no more visits.
    Stopped,
    /// The writer thread ended without being asked to, with the cause.
    Died(String),
}

/// `Shared::write_started_ms` while no write is in flight.
const NO_WRITE: u64 = u64::MAX;

struct Shared {
    /// When this process's clock started, for `write_started_ms`.
    epoch: Instant,
    /// Milliseconds after `epoch` at which the write in flight began;
    /// `NO_WRITE` while none is.
    write_started_ms: AtomicU64,
    write_timeout: Duration,
    total: AtomicU64,
    state: watch::Sender<WriterState>,
    metrics: StoreMetrics,
}

impl Shared {
    fn set_healthy(&self) {
        let recovered = self.state.send_if_modified(|state| match state {
            WriterState::Failing(_) => {
                *state = WriterState::Healthy;
                true
            }
            WriterState::Healthy | WriterState::Stopped | WriterState::Died(_) => false,
        });
        if recovered {
            tracing::info!("writes to the data directory succeed again; ready");
        }
    }

    fn set_failed(&self, error: &StoreError) {
        self.state
            .send_replace(WriterState::Failing(error.reason()));
    }

    /// Records why the writer thread ended, if it was not asked to: it
    /// panicked with `panic`'s message.
    fn writer_ended(&self, ended: std::thread::Result<()>) {
        let Err(panic) = ended else {
            return;
        };
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let cause = format!("it panicked: {message}");
        tracing::error!(
            cause,
            "the visit writer died: no visit can be counted any more; stopping the process"
        );
        self.state.send_replace(WriterState::Died(cause));
    }

    /// Runs one store call, recording when it started so that a stalled
    /// write shows in readiness.
    fn timed<T>(&self, write: impl FnOnce() -> T) -> T {
        self.write_started_ms
            .store(self.millis_since_epoch(), Ordering::Release);
        let result = write();
        self.write_started_ms.store(NO_WRITE, Ordering::Release);
        result
    }

    /// How long the write in flight has taken so far, if one is.
    fn write_in_flight(&self) -> Option<Duration> {
        match self.write_started_ms.load(Ordering::Acquire) {
            NO_WRITE => None,
            started => Some(Duration::from_millis(
                self.millis_since_epoch().saturating_sub(started),
            )),
        }
    }

    /// How long the write in flight has taken, if that is longer than the
    /// write timeout: the volume hangs.
    fn stalled(&self) -> Option<Duration> {
        self.write_in_flight()
            .filter(|in_flight| *in_flight > self.write_timeout)
    }

    /// Never `NO_WRITE`: that is 584 million years after start.
    fn millis_since_epoch(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn observe_total(&self, total: u64) {
        let previous = self.total.swap(total, Ordering::AcqRel);
        // Another process sharing the folder may have moved the count on;
        // the metric follows the file (upwards only: it is a counter).
        self.metrics
            .visits_total
            .inc_by(total.saturating_sub(previous));
    }
}

/// The handle the HTTP side uses: one channel push and one await per visit.
pub struct Committer {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    /// Starts the writer thread for an opened store whose count is `count`.
    ///
    /// # Errors
    /// When the operating system refuses the thread (a pids limit, for one).
    pub fn start(
        store: Store,
        count: u64,
        config: CommitterConfig,
        metrics: StoreMetrics,
    ) -> std::io::Result<Self> {
        metrics.visits_total.inc_by(count);
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            write_started_ms: AtomicU64::new(NO_WRITE),
            write_timeout: config.write_timeout,
            total: AtomicU64::new(count),
            state: watch::Sender::new(WriterState::Healthy),
            metrics,
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        let max_batch = config.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("visit-writer".into())
            .spawn(move || {
                // Caught to say why at once and to tell the process (see
                // `writer_died`); the queue is dropped first, which refuses
                // every visit still in it.
                let ended = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    write_loop(&store, &rx, &writer_shared, max_batch);
                }));
                drop(rx);
                writer_shared.writer_ended(ended);
            })?;
        Ok(Committer {
            tx,
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Records one visit and resolves with its number once it is durable,
    /// or with an error after at most the write timeout.
    pub async fn record_visit(&self) -> Result<u64, VisitError> {
        if let Some(in_flight) = self.shared.stalled() {
            return Err(VisitError::Stalled(in_flight));
        }
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        self.tx
            .send(Message::Visit(Waiting { reply, span }))
            .map_err(|_| VisitError::ShuttingDown)?;
        let timeout = self.shared.write_timeout;
        match tokio::time::timeout(timeout, answer).await {
            Ok(answer) => answer.unwrap_or(Err(VisitError::ShuttingDown)),
            Err(_) => Err(VisitError::TimedOut(timeout)),
        }
    }

    /// The count as of the last durable write seen by this process.
    pub fn count(&self) -> u64 {
        self.shared.total.load(Ordering::Acquire)
    }

    /// Sets `moscow_time_persist_in_flight_seconds` to the age of the write
    /// in flight (0 when none is); called before each scrape, since a hung
    /// write never gets to report itself.
    pub fn observe_write_in_flight(&self) {
        let in_flight = self.shared.write_in_flight().unwrap_or_default();
        self.shared
            .metrics
            .persist_in_flight
            .set(in_flight.as_secs_f64());
    }

    /// Resolves, with the cause, once the writer thread has died (it
    /// panicked); never while it lives or after it was stopped on purpose.
    /// A process that sees it should exit: no visit can be counted again.
    pub async fn writer_died(&self) -> String {
        let mut state = self.shared.state.subscribe();
        let died = state
            .wait_for(|state| matches!(state, WriterState::Died(_)))
            .await;
        match died.as_deref() {
            Ok(WriterState::Died(cause)) => cause.clone(),
            _ => "the writer's state is gone".to_owned(),
        }
    }

    /// Whether visits can be taken now, and why not.
    pub fn health(&self) -> Health {
        match &*self.shared.state.borrow() {
            WriterState::Died(cause) => {
                return Health::NotReady(format!("the visit writer died: {cause}"));
            }
            WriterState::Stopped => return Health::NotReady("the visit writer stopped".into()),
            WriterState::Healthy | WriterState::Failing(_) => {}
        }
        if let Some(in_flight) = self.shared.stalled() {
            return Health::NotReady(format!(
                "a durable write has been in flight for {:.1} s, longer than the write timeout \
                 (the volume does not answer)",
                in_flight.as_secs_f64()
            ));
        }
        match &*self.shared.state.borrow() {
            WriterState::Failing(reason) => Health::NotReady(reason.clone()),
            _ => Health::Ready,
        }
    }

    /// Persists every visit queued so far, then stops the writer thread.
    /// Visits recorded after this are refused.
    pub fn stop(&self) {
        let _ = self.tx.send(Message::Stop);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            // The thread catches its own panic and reports it (`writer_died`).
            let _ = writer.join();
        }
        self.shared.state.send_if_modified(|state| match state {
            WriterState::Died(_) => false,
            _ => {
                *state = WriterState::Stopped;
                true
            }
        });
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_loop(store: &Store, rx: &mpsc::Receiver<Message>, shared: &Shared, max_batch: usize) {
    let mut batch: Vec<Waiting> = Vec::with_capacity(max_batch.min(4096));
    loop {
        let first = if *shared.state.borrow() == WriterState::Healthy {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(PROBE_INTERVAL) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    probe(store, shared);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            }
        };
        let mut stopping = match first {
            Some(Message::Visit(waiting)) => {
                push_if_waiting(&mut batch, waiting);
                false
            }
            Some(Message::Stop) | None => true,
        };
        while !stopping && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Message::Visit(waiting)) => push_if_waiting(&mut batch, waiting),
                Ok(Message::Stop) => stopping = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit(store, shared, &mut batch);
        }
        if stopping {
            // Visits queued behind the stop message are refused by dropping
            // their reply senders.
            return;
        }
    }
}

/// Adds a visit to the batch unless its visitor stopped waiting (the write
/// timeout passed, or the client went away): nobody is told about such a
/// visit, so it is not written.
fn push_if_waiting(batch: &mut Vec<Waiting>, waiting: Waiting) {
    if !waiting.reply.is_closed() {
        batch.push(waiting);
    }
}

fn commit(store: &Store, shared: &Shared, batch: &mut Vec<Waiting>) {
    let n = batch.len() as u64;
    let span = write_span(batch);
    let _entered = span.enter();
    let started = Instant::now();
    let result = shared.timed(|| store.add(n));
    let metrics = &shared.metrics;
    metrics
        .persist_duration
        .observe(started.elapsed().as_secs_f64());
    metrics.persist_batch_size.observe(n as f64);
    match result {
        Ok(total) => {
            shared.observe_total(total);
            shared.set_healthy();
            let mut late = 0;
            for (number, waiting) in (total - n + 1..).zip(batch.drain(..)) {
                if waiting.reply.send(Ok(number)).is_err() {
                    late += 1;
                }
            }
            metrics.visits_late.inc_by(late);
        }
        Err(error) => {
            metrics.persist_errors.inc();
            tracing::error!(error = %error_chain(&error), batch = n, "a durable write failed; the batch was not counted");
            shared.set_failed(&error);
            let error = Arc::new(error);
            for waiting in batch.drain(..) {
                let _ = waiting
                    .reply
                    .send(Err(VisitError::NotRecorded(Arc::clone(&error))));
            }
        }
    }
}

/// The span of one durable write, linked from every visit it carries; a
/// no-op span when none of them is traced.
fn write_span(batch: &[Waiting]) -> tracing::Span {
    if batch.iter().all(|w| w.span.is_none()) {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("persist visits", batch_size = batch.len());
    for waiting in batch {
        span.follows_from(&waiting.span);
    }
    span
}

fn probe(store: &Store, shared: &Shared) {
    match shared.timed(|| store.add(0)) {
        Ok(total) => {
            shared.observe_total(total);
            shared.set_healthy();
        }
        Err(error) => {
            tracing::debug!(error = %error_chain(&error), "write probe still failing");
            shared.set_failed(&error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FaultHook, Step};
    use futures_util::FutureExt as _;
    use std::collections::HashSet;
    use std::io;
    use std::path::Path;
    use std::sync::Condvar;
    use std::sync::atomic::AtomicBool;

    /// The longest any test waits for an answer or a signal. A writer that
    /// stopped answering fails its test after this long, saying so, instead
    /// of hanging the suite.
    const PATIENCE: Duration = Duration::from_secs(5);

    /// Awaits `answer`, failing the test if it does not come within
    /// [`PATIENCE`].
    async fn within<T>(answer: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, answer)
            .await
            .unwrap_or_else(|_| panic!("no answer within {PATIENCE:?}: the visit writer is stuck"))
    }

    fn committer(dir: &Path, max_batch: usize) -> Committer {
        committer_with(dir, max_batch, None)
    }

    fn committer_with(dir: &Path, max_batch: usize, fault: Option<FaultHook>) -> Committer {
        committer_timing_out(dir, max_batch, fault, Duration::from_secs(5))
    }

    fn committer_timing_out(
        dir: &Path,
        max_batch: usize,
        fault: Option<FaultHook>,
        write_timeout: Duration,
    ) -> Committer {
        let (store, count) = Store::open_with_fault(dir, Duration::from_secs(5), fault).unwrap();
        Committer::start(
            store,
            count,
            CommitterConfig {
                max_batch,
                write_timeout,
            },
            StoreMetrics::new().unwrap(),
        )
        .unwrap()
    }

    /// A committer whose first write, of one visit, is held at a gate;
    /// with the gate and that visit's pending answer.
    fn with_a_held_write(
        dir: &Path,
        max_batch: usize,
    ) -> (
        Committer,
        Arc<Gate>,
        impl Future<Output = Result<u64, VisitError>> + use<>,
    ) {
        let gate = Arc::new(Gate::default());
        let c = committer_with(dir, max_batch, Some(gate.hook()));
        let first = enqueue(&c);
        gate.wait_for_a_held_write();
        (c, gate, first)
    }

    /// A hook that does `act` at the lock step of every write while the
    /// returned switch is on (as it starts when `on`).
    fn switched_hook(
        on: bool,
        act: impl Fn() -> io::Result<()> + Send + Sync + 'static,
    ) -> (Arc<AtomicBool>, FaultHook) {
        let switch = Arc::new(AtomicBool::new(on));
        let hook: FaultHook = Arc::new({
            let switch = Arc::clone(&switch);
            move |step| match step {
                Step::Locked if switch.load(Ordering::Acquire) => act(),
                _ => Ok(()),
            }
        });
        (switch, hook)
    }

    /// Waits until `check` holds, at most [`PATIENCE`].
    async fn until(mut check: impl FnMut() -> bool) {
        within(async {
            while !check() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Queues one visit on the writer's channel, as
    /// [`Committer::record_visit`] does, and returns its pending answer, so
    /// that a test knows exactly which visits wait in the queue.
    fn enqueue(c: &Committer) -> impl Future<Output = Result<u64, VisitError>> + use<> {
        let (reply, answer) = oneshot::channel();
        c.tx.send(Message::Visit(Waiting {
            reply,
            span: tracing::Span::none(),
        }))
        .unwrap();
        async move { answer.await.unwrap_or(Err(VisitError::ShuttingDown)) }
    }

    fn visits_file(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(crate::store::VISITS_FILE)).unwrap()
    }

    /// Holds every durable write (after its lock) until opened, so a test
    /// can fill the queue behind a write in flight.
    #[derive(Default)]
    struct Gate {
        state: Mutex<GateState>,
        changed: Condvar,
    }

    #[derive(Default)]
    struct GateState {
        writes_held: usize,
        open: bool,
    }

    impl Gate {
        fn hook(self: &Arc<Self>) -> FaultHook {
            let gate = Arc::clone(self);
            Arc::new(move |step| {
                if step == Step::Locked {
                    gate.hold();
                }
                Ok(())
            })
        }

        fn hold(&self) {
            let mut state = self.state.lock().unwrap();
            state.writes_held += 1;
            self.changed.notify_all();
            let (state, _) = self
                .changed
                .wait_timeout_while(state, PATIENCE, |s| !s.open)
                .unwrap();
            assert!(state.open, "the gate stayed shut for {PATIENCE:?}");
        }

        /// Blocks until the writer is held inside its first write.
        fn wait_for_a_held_write(&self) {
            let state = self.state.lock().unwrap();
            let (state, _) = self
                .changed
                .wait_timeout_while(state, PATIENCE, |s| s.writes_held == 0)
                .unwrap();
            assert!(
                state.writes_held > 0,
                "no write started within {PATIENCE:?}"
            );
        }

        fn open(&self) {
            self.state.lock().unwrap().open = true;
            self.changed.notify_all();
        }
    }

    /// Collects what `f` logs on this thread, one string per line.
    fn log_lines_of(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer(Arc::default());
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(String::from).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_visits_get_distinct_gapless_numbers_in_fewer_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Arc::new(committer(tmp.path(), 4096));
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let c = Arc::clone(&c);
                tokio::spawn(async move { within(c.record_visit()).await.unwrap() })
            })
            .collect();
        let mut numbers = HashSet::new();
        for t in tasks {
            assert!(numbers.insert(within(t).await.unwrap()));
        }
        assert_eq!(numbers, (1..=500).collect::<HashSet<u64>>());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("visits")).unwrap(),
            "500\n"
        );
        assert_eq!(c.count(), 500);
        assert_eq!(c.shared.metrics.visits_total.get(), 500);
        let writes = c.shared.metrics.persist_batch_size.get_sample_count();
        assert!(
            writes < 500,
            "group commit made {writes} writes for 500 visits"
        );
    }

    #[tokio::test]
    async fn a_batch_size_of_one_writes_once_per_visit() {
        let tmp = tempfile::tempdir().unwrap();
        let c = committer(tmp.path(), 1);
        for expected in 1..=5 {
            assert_eq!(within(c.record_visit()).await.unwrap(), expected);
        }
        assert_eq!(c.shared.metrics.persist_batch_size.get_sample_count(), 5);
    }

    #[tokio::test]
    async fn stopping_persists_queued_visits_and_refuses_later_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let c = committer(tmp.path(), 64);
        assert_eq!(within(c.record_visit()).await.unwrap(), 1);
        c.stop();
        assert!(matches!(
            within(c.record_visit()).await,
            Err(VisitError::ShuttingDown)
        ));
        assert!(matches!(c.health(), Health::NotReady(_)));
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("visits")).unwrap(),
            "1\n"
        );
    }

    #[tokio::test]
    async fn a_write_stalled_past_the_limit_turns_readiness_off_until_it_returns() {
        let tmp = tempfile::tempdir().unwrap();
        let gate = Arc::new(Gate::default());
        let c = committer_timing_out(
            tmp.path(),
            64,
            Some(gate.hook()),
            Duration::from_millis(200),
        );
        assert_eq!(c.health(), Health::Ready);
        let visit = enqueue(&c);
        gate.wait_for_a_held_write();
        // The write stays held until the gate opens, however slow the machine.
        until(|| c.health() != Health::Ready).await;
        c.observe_write_in_flight();
        let stuck_for = c.shared.metrics.persist_in_flight.get();
        assert!(stuck_for >= 0.2, "the write in flight shows {stuck_for} s");
        match c.health() {
            Health::NotReady(reason) => assert!(reason.contains("in flight"), "{reason}"),
            Health::Ready => unreachable!("waited for not ready"),
        }
        gate.open();
        assert_eq!(within(visit).await.unwrap(), 1);
        assert_eq!(c.health(), Health::Ready);
        c.observe_write_in_flight();
        assert_eq!(
            c.shared.metrics.persist_in_flight.get(),
            0.0,
            "no write in flight"
        );
    }

    /// A write that hangs: its visitor is answered at the write timeout, a
    /// visit after that is refused at once without being queued, and when
    /// the write returns the refused visitor's visit is counted, and counted
    /// as late, while the visit refused at once is not.
    #[tokio::test]
    async fn a_hung_write_answers_at_the_write_timeout_and_then_refuses_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let gate = Arc::new(Gate::default());
        let timeout = Duration::from_millis(200);
        let c = committer_timing_out(tmp.path(), 64, Some(gate.hook()), timeout);
        let held = within(c.record_visit()).await;
        assert!(
            matches!(held, Err(VisitError::TimedOut(t)) if t == timeout),
            "{held:?}"
        );
        gate.wait_for_a_held_write();
        until(|| c.health() != Health::Ready).await;
        let refused = c.record_visit().now_or_never();
        assert!(
            matches!(refused, Some(Err(VisitError::Stalled(_)))),
            "not refused at once: {refused:?}"
        );
        gate.open();
        // Counted as late once the held write has returned.
        until(|| c.shared.metrics.visits_late.get() > 0).await;
        assert_eq!(visits_file(tmp.path()), "1\n", "the held visit was written");
        assert_eq!(c.health(), Health::Ready);
        assert_eq!(within(c.record_visit()).await.unwrap(), 2);
        assert_eq!(visits_file(tmp.path()), "2\n");
    }

    /// Visits whose visitors stopped waiting while they were queued are
    /// dropped, not written: nobody was told they counted.
    #[tokio::test]
    async fn queued_visits_whose_visitors_stopped_waiting_are_not_written() {
        let tmp = tempfile::tempdir().unwrap();
        let (c, gate, first) = with_a_held_write(tmp.path(), 64);
        let gone: Vec<_> = (0..3).map(|_| enqueue(&c)).collect();
        let kept = enqueue(&c);
        drop(gone);
        gate.open();
        assert_eq!(within(first).await.unwrap(), 1);
        assert_eq!(within(kept).await.unwrap(), 2);
        assert_eq!(visits_file(tmp.path()), "2\n");
        assert_eq!(c.shared.metrics.visits_late.get(), 0);
    }

    /// Twenty visits wait behind a write in flight; with `max_batch` 4 they
    /// must go out as five writes of four, never as fewer, larger ones.
    #[tokio::test]
    async fn a_write_never_takes_more_than_max_batch_visits() {
        let tmp = tempfile::tempdir().unwrap();
        let (c, gate, first) = with_a_held_write(tmp.path(), 4);
        let queued: Vec<_> = (0..20).map(|_| enqueue(&c)).collect();
        gate.open();
        assert_eq!(within(first).await.unwrap(), 1);
        for (expected, answer) in (2..).zip(queued) {
            assert_eq!(within(answer).await.unwrap(), expected);
        }
        let sizes = &c.shared.metrics.persist_batch_size;
        assert_eq!(
            (sizes.get_sample_count(), sizes.get_sample_sum()),
            (6, 21.0),
            "21 visits, at most 4 per write: one write of 1, then five of 4"
        );
        assert_eq!(visits_file(tmp.path()), "21\n");
    }

    #[tokio::test]
    async fn visits_queued_behind_the_stop_are_refused_and_those_before_it_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (c, gate, first) = with_a_held_write(tmp.path(), 64);
        let before_stop = enqueue(&c);
        c.tx.send(Message::Stop).unwrap();
        let behind_stop = enqueue(&c);
        gate.open();
        assert_eq!(within(first).await.unwrap(), 1);
        assert_eq!(within(before_stop).await.unwrap(), 2);
        let refused = within(behind_stop).await;
        assert!(
            matches!(refused, Err(VisitError::ShuttingDown)),
            "a visit queued behind the stop got {refused:?}"
        );
        assert_eq!(visits_file(tmp.path()), "2\n");
    }

    /// Dropping the committer is a stop: it returns only once every visit
    /// queued before it is persisted. Each write is slowed so that a drop
    /// that does not wait would see the file still behind.
    #[tokio::test]
    async fn dropping_the_committer_persists_the_queued_visits_before_returning() {
        let tmp = tempfile::tempdir().unwrap();
        let slow: FaultHook = Arc::new(|step| {
            if step == Step::Locked {
                // A deliberate pause, what the test is about: slow writes.
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        });
        let c = committer_with(tmp.path(), 1, Some(slow));
        let queued: Vec<_> = (0..4).map(|_| enqueue(&c)).collect();
        drop(c);
        assert_eq!(
            visits_file(tmp.path()),
            "4\n",
            "the drop returned before the queued visits were persisted"
        );
        for (expected, answer) in (1..).zip(queued) {
            assert_eq!(within(answer).await.unwrap(), expected);
        }
    }

    #[test]
    fn a_recovery_is_logged_once_not_on_every_write() {
        let tmp = tempfile::tempdir().unwrap();
        let c = committer(tmp.path(), 64);
        let shared = &c.shared;
        let failure = StoreError::Missing(tmp.path().to_path_buf());
        let lines = log_lines_of(|| {
            shared.set_healthy();
            shared.set_failed(&failure);
            assert!(
                matches!(c.health(), Health::NotReady(ref r) if r.contains("does not exist")),
                "{:?}",
                c.health()
            );
            shared.set_healthy();
            shared.set_healthy();
        });
        let recoveries = lines.iter().filter(|l| l.contains("succeed again")).count();
        assert_eq!(recoveries, 1, "{lines:#?}");
        assert_eq!(c.health(), Health::Ready);
        assert_eq!(*shared.state.borrow(), WriterState::Healthy);
    }

    /// A failed write refuses its batch and turns readiness off; with no
    /// visit at all afterwards, the idle writer's probe turns it back on.
    #[tokio::test]
    async fn a_failed_write_is_refused_and_an_idle_probe_restores_readiness() {
        let tmp = tempfile::tempdir().unwrap();
        let (failing, hook) =
            switched_hook(true, || Err(io::Error::other("injected: the disk is gone")));
        let c = committer_with(tmp.path(), 64, Some(hook));
        let refused = within(c.record_visit()).await;
        assert!(
            matches!(refused, Err(VisitError::NotRecorded(_))),
            "{refused:?}"
        );
        assert!(
            matches!(c.health(), Health::NotReady(ref r) if r.contains("injected")),
            "{:?}",
            c.health()
        );
        assert_eq!(c.shared.metrics.persist_errors.get(), 1);
        failing.store(false, Ordering::Release);
        until(|| c.health() == Health::Ready).await;
        assert_eq!(visits_file(tmp.path()), "0\n");
        assert_eq!(within(c.record_visit()).await.unwrap(), 1);
    }

    /// A panic in the writer (here from the fault seam, inside a write)
    /// ends it for good: the visit in that write and every later one are
    /// refused, readiness fails naming the cause, and `writer_died` says
    /// so, while a writer that lives or was stopped never does.
    #[tokio::test]
    async fn a_writer_that_panics_refuses_every_visit_and_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let (armed, hook) = switched_hook(false, || panic!("injected writer panic"));
        let c = committer_with(tmp.path(), 64, Some(hook));
        assert_eq!(within(c.record_visit()).await.unwrap(), 1);
        assert!(
            c.writer_died().now_or_never().is_none(),
            "a living writer died"
        );
        armed.store(true, Ordering::Release);
        let refused = within(c.record_visit()).await;
        assert!(
            matches!(refused, Err(VisitError::ShuttingDown)),
            "{refused:?}"
        );
        let cause = within(c.writer_died()).await;
        assert!(cause.contains("injected writer panic"), "{cause}");
        assert!(
            matches!(c.health(), Health::NotReady(ref r) if r.contains("writer died") && r.contains("injected")),
            "{:?}",
            c.health()
        );
        armed.store(false, Ordering::Release);
        let later = within(c.record_visit()).await;
        assert!(matches!(later, Err(VisitError::ShuttingDown)), "{later:?}");
        assert_eq!(visits_file(tmp.path()), "1\n");
        c.stop();
        assert!(
            matches!(c.health(), Health::NotReady(ref r) if r.contains("writer died")),
            "stopping a dead writer hid its death: {:?}",
            c.health()
        );

        let other = tempfile::tempdir().unwrap();
        let stopped = committer(other.path(), 64);
        stopped.stop();
        assert!(
            stopped.writer_died().now_or_never().is_none(),
            "a writer stopped on purpose died"
        );
    }

    #[tokio::test]
    async fn the_count_and_its_metric_follow_a_file_moved_on_by_another_process() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(crate::store::VISITS_FILE), "3\n").unwrap();
        let c = committer(tmp.path(), 64);
        assert_eq!(c.shared.metrics.visits_total.get(), 3);
        let other = Store::at(tmp.path(), Duration::from_secs(5)).unwrap();
        assert_eq!(other.add(10).unwrap(), 13);
        assert_eq!(within(c.record_visit()).await.unwrap(), 14);
        assert_eq!(c.count(), 14);
        assert_eq!(c.shared.metrics.visits_total.get(), 14);
    }
}
