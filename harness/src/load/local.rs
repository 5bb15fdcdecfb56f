//! A worker's single-threaded state, shared by its dispatcher (which queues arrivals) and its
//! slots (which take them and record what happened).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::stats::{Outcome, Stats, StreamStats};

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

    pub(crate) fn finish(
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
