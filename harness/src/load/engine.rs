//! One worker thread: a current-thread runtime that dispatches its share of the schedule to its
//! share of the connections and hands its statistics to the collector at every window close.
//!
//! Everything inside a worker is single-threaded (`Rc`, `RefCell`): no locks or atomics on the
//! request path except the shared completed-requests counter.

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::client::{Conn, Connector, Scratch};
use super::dispatch::dispatch;
use super::local::{Job, Local};
use super::request::Mix;
use super::schedule::Schedule;
use super::stats::{ErrorKind, Outcome, Stats, StreamStats};
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
        let plan = &shared.plan;
        let streams = if shared.connector.client().shares_connections() {
            plan.streams_per_connection.max(1)
        } else {
            1
        };
        let local = Local::new(completed, connections, streams);
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
            (connections, streams),
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
        local.close();
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
    (connections, streams): (usize, usize),
    closed_loop: bool,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let shard = shared.plan.shard;
    let mut handles = Vec::new();
    for c in 0..connections {
        let group: Rc<tokio::sync::Mutex<Option<Conn>>> = Rc::default();
        for s in 0..streams {
            let slot = Slot {
                index: c * streams + s,
                shared: shared.clone(),
                local: local.clone(),
                group: group.clone(),
                own: None,
                rng: SmallRng::seed_from_u64(
                    shared.seed ^ ((id * 1_000_003 + c * 1009 + s) as u64),
                ),
                scratch: Scratch {
                    text: String::with_capacity(256),
                    bytes: Vec::with_capacity(256),
                },
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

/// One request slot: a connection of its own, or one stream of a shared connection.
struct Slot {
    /// This slot's number among the worker's slots (connection `index / streams`).
    index: usize,
    shared: Arc<Shared>,
    local: Rc<Local>,
    group: Rc<tokio::sync::Mutex<Option<Conn>>>,
    own: Option<Conn>,
    rng: SmallRng,
    scratch: Scratch,
    /// The cut-off timer, kept across requests and re-armed lazily (see [`within`]).
    timer: Pin<Box<Sleep>>,
}

impl Slot {
    async fn open_loop(mut self, cancel: CancellationToken) {
        while let Some(job) = self.local.next_job(self.index).await {
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
        let mut conn = match self.conn(behaviour.new_connection).await {
            Ok(c) => c,
            Err(kind) => return (Outcome::Error(kind), 0),
        };
        let limit = shared.plan.timeout;
        let (cut, cut_kind) = match behaviour.cancel_after {
            Some(c) if c < limit => (c, ErrorKind::Cancelled),
            _ => (limit, ErrorKind::Timeout),
        };
        let send = conn.send(
            &shared.mix,
            i,
            job.seq,
            &mut self.rng,
            &mut self.scratch,
            behaviour.abandon_after,
            stream,
        );
        let (outcome, bytes, reusable) =
            match within(self.timer.as_mut(), sent_at + cut, send).await {
                Some(x) => (x.outcome, x.bytes, x.reusable),
                None => (Outcome::Error(cut_kind), 0, conn.cut()),
            };
        if !behaviour.new_connection && reusable {
            self.own = Some(conn);
        }
        (outcome, bytes)
    }

    /// An open connection: this slot's own, its handle on the group's shared one, or a new one.
    async fn conn(&mut self, fresh: bool) -> Result<Conn, ErrorKind> {
        if fresh {
            return self.shared.connector.connect().await;
        }
        if let Some(mut s) = self.own.take() {
            s.refresh();
            if s.is_open() {
                return Ok(s);
            }
        }
        if !self.shared.connector.client().shares_connections() {
            return self.shared.connector.connect().await;
        }
        let mut g = self.group.lock().await;
        if let Some(s) = g.as_ref().and_then(Conn::share) {
            return Ok(s);
        }
        let s = self.shared.connector.connect().await?;
        *g = s.share();
        Ok(s)
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
