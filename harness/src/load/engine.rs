//! One worker thread: a current-thread runtime that dispatches its share of the schedule to its
//! share of the connections and hands its statistics to the collector at every window close.
//!
//! Everything inside a worker is single-threaded (`Rc`, `RefCell`): no locks or atomics on the
//! request path except the shared completed-requests counter.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::dispatch::dispatch;
use super::grpc_conn::StreamStats;
use super::http::{Connector, Sender};
use super::request::Mix;
use super::schedule::Schedule;
use super::stats::{ErrorKind, Outcome, Stats};
use crate::scenario::plan::{LoadPlan, Protocol, Rate, Shard};

/// What a worker sends to the collector.
pub enum Part {
    /// Statistics of window `index` from one worker.
    Window {
        /// Window number.
        index: u64,
        /// The worker's statistics for it.
        stats: Box<Stats>,
    },
    /// The worker is done; no more parts follow from it.
    Done,
}

/// Everything a worker needs, shared read-only between workers.
pub struct Shared {
    /// The plan.
    pub plan: LoadPlan,
    /// Compiled requests.
    pub mix: Mix,
    /// Connection factory.
    pub connector: Connector,
    /// Number of workers.
    pub workers: usize,
    /// Seed for templates and arrivals.
    pub seed: u64,
}

/// A queued arrival.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub seq: u64,
    pub intended: Instant,
}

/// A worker's single-threaded state.
pub(crate) struct Local {
    pub queue: RefCell<VecDeque<Job>>,
    pub notify: Notify,
    pub stats: RefCell<Stats>,
    pub closing: Cell<bool>,
    pub in_flight: Cell<usize>,
    pub completed: Arc<AtomicU64>,
    /// The window the stats currently accumulate for.
    pub window_index: Cell<u64>,
}

impl Local {
    pub(crate) fn new(completed: Arc<AtomicU64>) -> Rc<Self> {
        Rc::new(Self {
            queue: RefCell::default(),
            notify: Notify::new(),
            stats: RefCell::default(),
            closing: Cell::new(false),
            in_flight: Cell::new(0),
            completed,
            window_index: Cell::new(0),
        })
    }

    /// Waits for the next job; `None` once the worker is closing and the queue is empty.
    pub(crate) async fn next_job(&self) -> Option<Job> {
        loop {
            if let Some(j) = self.queue.borrow_mut().pop_front() {
                return Some(j);
            }
            if self.closing.get() {
                return None;
            }
            self.notify.notified().await;
        }
    }

    fn finish(
        &self,
        outcome: Outcome,
        job: Job,
        sent_at: Instant,
        bytes: u64,
        stream: Option<StreamStats>,
    ) {
        let end = Instant::now();
        // A job handed out up to EARLY before its time is measured from its actual send, so
        // the corrected latency is never below the real one.
        let from = job.intended.min(sent_at);
        let mut stats = self.stats.borrow_mut();
        stats.record(outcome, end - from, end - sent_at, bytes);
        if let Some(s) = stream {
            stats.record_stream(s.messages, s.first_at.map(|f| f - from));
        }
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs worker `id` to the end; blocks its thread.
pub fn run_worker(
    shared: Arc<Shared>,
    id: usize,
    connections: usize,
    start: std::time::Instant,
    cancel: CancellationToken,
    completed: Arc<AtomicU64>,
    tx: mpsc::Sender<Part>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => {
            let _ = tx.send(Part::Done);
            return;
        }
    };
    let local_set = tokio::task::LocalSet::new();
    local_set.block_on(&rt, async move {
        let start = Instant::from_std(start);
        let local = Local::new(completed);
        let plan = &shared.plan;
        let window = plan.window;
        let closed_loop = plan.phases.iter().any(|p| p.rate == Rate::Max);
        let deadline = start + plan.phases.iter().map(|p| p.duration).sum::<Duration>();

        // Window closer: hands the stats over at every boundary, on a fixed grid from start.
        let closer = {
            let local = local.clone();
            let tx = tx.clone();
            tokio::task::spawn_local(async move {
                loop {
                    let index = local.window_index.get();
                    tokio::time::sleep_until(start + window * (index as u32 + 1)).await;
                    let stats = std::mem::take(&mut *local.stats.borrow_mut());
                    local.window_index.set(index + 1);
                    if tx
                        .send(Part::Window {
                            index,
                            stats: Box::new(stats),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
        };

        let slots = spawn_slots(
            &shared,
            &local,
            id,
            connections,
            closed_loop,
            deadline,
            &cancel,
        );
        if !closed_loop {
            let (first, stride) = Shard::arrivals(plan.shard, id as u64, shared.workers as u64);
            let schedule = Schedule::new(&plan.phases, plan.arrivals, shared.seed, first, stride);
            let max_queue = (plan.max_queue / shared.workers).max(1);
            // A task of its own: the future driving the LocalSet is polled at every wake-up
            // of any task, the dispatcher should only run when its timer fires.
            let (local, cancel) = (local.clone(), cancel.clone());
            let dispatcher = tokio::task::spawn_local(async move {
                dispatch(&local, schedule, start, max_queue, &cancel).await;
            });
            let _ = dispatcher.await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = cancel.cancelled() => {}
            }
        }
        // Let queued and in-flight requests finish, within the request timeout.
        local.closing.set(true);
        local.notify.notify_waiters();
        let grace = tokio::time::sleep(plan.timeout.min(Duration::from_secs(10)));
        tokio::pin!(grace);
        for s in slots {
            tokio::select! {
                _ = &mut grace => break,
                _ = cancel.cancelled() => break,
                _ = s => {}
            }
        }
        // Queued jobs that never ran were planned but not sent: they count as dropped.
        let left = local.queue.borrow_mut().drain(..).count() as u64;
        closer.abort();
        let index = local.window_index.get();
        let mut stats = std::mem::take(&mut *local.stats.borrow_mut());
        stats.dropped += left;
        let _ = tx.send(Part::Window {
            index,
            stats: Box::new(stats),
        });
        // Fault injection for the fault suite (debug builds only): a worker that dies.
        #[cfg(debug_assertions)]
        if std::env::var_os("LEAKGATE_FAULT_WORKER_PANIC").is_some() {
            panic!("fault injected by LEAKGATE_FAULT_WORKER_PANIC");
        }
        let _ = tx.send(Part::Done);
    });
}

fn spawn_slots(
    shared: &Arc<Shared>,
    local: &Rc<Local>,
    id: usize,
    connections: usize,
    closed_loop: bool,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let plan = &shared.plan;
    let shard = plan.shard;
    let streams = if plan.protocol == Protocol::Http1 {
        1
    } else {
        plan.streams_per_connection.max(1)
    };
    let mut handles = Vec::new();
    for c in 0..connections {
        let group: Rc<tokio::sync::Mutex<Option<Sender>>> = Rc::default();
        for s in 0..streams {
            let slot = Slot {
                shared: shared.clone(),
                local: local.clone(),
                group: group.clone(),
                own: None,
                rng: SmallRng::seed_from_u64(
                    shared.seed ^ ((id * 1_000_003 + c * 1009 + s) as u64),
                ),
                buf: String::with_capacity(256),
                raw: Vec::with_capacity(256),
                timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            };
            let cancel = cancel.clone();
            handles.push(tokio::task::spawn_local(async move {
                if closed_loop {
                    slot.closed_loop(
                        deadline,
                        cancel,
                        (id * 1_000_003 + c * streams + s) as u64,
                        shard,
                    )
                    .await
                } else {
                    slot.open_loop(cancel).await
                }
            }));
        }
    }
    handles
}

/// One request slot: a connection (HTTP/1.1) or one stream of a shared connection (HTTP/2).
struct Slot {
    shared: Arc<Shared>,
    local: Rc<Local>,
    group: Rc<tokio::sync::Mutex<Option<Sender>>>,
    own: Option<Sender>,
    rng: SmallRng,
    buf: String,
    raw: Vec<u8>,
    /// The cut-off timer, kept across requests and re-armed lazily (see [`within`]).
    timer: Pin<Box<Sleep>>,
}

impl Slot {
    async fn open_loop(mut self, cancel: CancellationToken) {
        while let Some(job) = self.local.next_job().await {
            if cancel.is_cancelled() {
                break;
            }
            self.one(job).await;
        }
    }

    async fn closed_loop(
        mut self,
        deadline: Instant,
        cancel: CancellationToken,
        base_seq: u64,
        shard: Option<Shard>,
    ) {
        // Shard I of N numbers its requests I mod N: `{{seq}}` never repeats across shards.
        let (index, count) = Shard::arrivals(shard, 0, 1);
        let mut n = 0u64;
        // One stop timer for the whole loop, not one per request.
        let stop = tokio::time::sleep_until(deadline + Duration::from_secs(1));
        tokio::pin!(stop);
        while Instant::now() < deadline && !cancel.is_cancelled() {
            self.local.stats.borrow_mut().planned += 1;
            let seq = (base_seq + n * 1_000_000_007) * count + index;
            n += 1;
            tokio::select! {
                biased;
                _ = self.one(Job { seq, intended: Instant::now() }) => {}
                _ = &mut stop => break,
            }
        }
    }

    async fn one(&mut self, job: Job) {
        let sent_at = Instant::now();
        self.local.stats.borrow_mut().sent += 1;
        self.local.in_flight.set(self.local.in_flight.get() + 1);
        let mut stream = StreamStats::default();
        let (outcome, bytes) = self.exchange(job, sent_at, &mut stream).await;
        self.local.in_flight.set(self.local.in_flight.get() - 1);
        let grpc = self.shared.plan.protocol == Protocol::Grpc;
        self.local
            .finish(outcome, job, sent_at, bytes, grpc.then_some(stream));
    }

    async fn exchange(
        &mut self,
        job: Job,
        sent_at: Instant,
        stream: &mut StreamStats,
    ) -> (Outcome, u64) {
        let shared = self.shared.clone();
        let i = shared.mix.pick(&mut self.rng);
        let prepared = shared.mix.get(i);
        let behaviour = &prepared.behaviour;
        let mut sender = match self.sender(behaviour.new_connection).await {
            Ok(s) => s,
            Err(kind) => return (Outcome::Error(kind), 0),
        };
        let limit = shared.plan.timeout;
        let (cut, cut_kind) = match behaviour.cancel_after {
            Some(c) if c < limit => (c, ErrorKind::Cancelled),
            _ => (limit, ErrorKind::Timeout),
        };
        let at = sent_at + cut;
        let timer = self.timer.as_mut();
        let result = match &mut sender {
            Sender::Lean(conn) => {
                match shared
                    .mix
                    .raw(i, job.seq, &mut self.rng, &mut self.buf, &mut self.raw)
                {
                    Ok(raw) => {
                        let head = prepared.is_head();
                        within(timer, at, conn.exchange(raw, head, behaviour.abandon_after)).await
                    }
                    // A templated value that is not valid HTTP: nothing was sent, the
                    // connection stays.
                    Err(_) => Some(super::http::done(Outcome::Error(ErrorKind::Other), 0)),
                }
            }
            Sender::Grpc(conn) => {
                let (head, message) =
                    match shared
                        .mix
                        .grpc_call(i, job.seq, &mut self.rng, &mut self.buf)
                    {
                        Ok(x) => x,
                        Err(_) => return (Outcome::Error(ErrorKind::Other), 0),
                    };
                let call = conn.call(head, message, behaviour.abandon_after, stream);
                within(timer, at, call).await
            }
            Sender::GrpcLean(conn) => {
                let (message, fields) = match shared.mix.grpc_parts(
                    i,
                    job.seq,
                    &mut self.rng,
                    &mut self.buf,
                    &mut self.raw,
                ) {
                    Ok(x) => x,
                    Err(_) => return (Outcome::Error(ErrorKind::Other), 0),
                };
                let head = super::grpc_lean::Head {
                    kind: i,
                    fields,
                    extra: &self.raw,
                };
                let call = conn.call(head, &message, behaviour.abandon_after, stream);
                let r = within(timer, at, call).await;
                if r.is_none() {
                    conn.cut();
                }
                r
            }
            other => {
                let req = match shared.mix.build(i, job.seq, &mut self.rng, &mut self.buf) {
                    Ok(r) => r,
                    Err(_) => return (Outcome::Error(ErrorKind::Other), 0),
                };
                within(timer, at, other.exchange(req, behaviour.abandon_after)).await
            }
        };
        let (outcome, bytes, reusable) = match result {
            Some(x) => (x.outcome, x.bytes, x.reusable),
            // Dropping the exchange resets an h2 stream; an h1 connection is unusable after it.
            None => (
                Outcome::Error(cut_kind),
                0,
                match &sender {
                    Sender::H2(_) | Sender::Grpc(_) => true,
                    Sender::GrpcLean(c) => c.is_open(),
                    Sender::H1(_) | Sender::Lean(_) => false,
                },
            ),
        };
        if !behaviour.new_connection && reusable {
            self.keep(sender);
        }
        (outcome, bytes)
    }

    /// An open sender: this slot's own (HTTP/1.1), the group's shared one (HTTP/2), or a new one.
    async fn sender(&mut self, fresh: bool) -> Result<Sender, ErrorKind> {
        if fresh {
            return self.shared.connector.connect().await;
        }
        // What the slot holds: its own connection (HTTP/1.1, lean gRPC) or its handle on the
        // group's shared one (gRPC on h2).
        if let Some(mut s) = self.own.take() {
            s.refresh();
            if s.is_open() {
                return Ok(s);
            }
        }
        let shared =
            self.shared.plan.protocol != Protocol::Http1 && !self.shared.connector.lean_grpc();
        if !shared {
            return self.shared.connector.connect().await;
        }
        let mut g = self.group.lock().await;
        if let Some(s) = g.as_ref().and_then(Sender::share) {
            return Ok(s);
        }
        let s = self.shared.connector.connect().await?;
        *g = s.share();
        Ok(s)
    }

    fn keep(&mut self, s: Sender) {
        if matches!(
            s,
            Sender::H1(_) | Sender::Lean(_) | Sender::Grpc(_) | Sender::GrpcLean(_)
        ) {
            self.own = Some(s);
        }
    }
}

/// Runs `fut` until it ends or `at` passes (`None`). The timer is the slot's own and is moved
/// only when it would fire too late; one armed for an earlier request that has since finished
/// fires once and is then moved to `at`. Requests under one fixed timeout so re-arm the timer
/// about once per timeout instead of registering and removing a timer for every request.
async fn within<F: Future>(mut timer: Pin<&mut Sleep>, at: Instant, fut: F) -> Option<F::Output> {
    if timer.deadline() > at {
        timer.as_mut().reset(at);
    }
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        while timer.as_mut().poll(cx).is_ready() {
            if timer.deadline() >= at {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(at);
        }
        Poll::Pending
    })
    .await
}
