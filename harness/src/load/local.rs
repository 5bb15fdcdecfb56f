//! A worker's single-threaded state, shared by its dispatcher (which queues arrivals) and its
//! slots (which take them and record what happened).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};

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
    /// The slots waiting for a job.
    idle: RefCell<Idle>,
    /// Scratch list of the slots one `wake` takes.
    woken: RefCell<Vec<(usize, Waker)>>,
    pub stats: RefCell<Stats>,
    closing: Cell<bool>,
    pub in_flight: Cell<usize>,
    pub completed: Arc<AtomicU64>,
    /// The window the stats currently accumulate for.
    pub window_index: Cell<u64>,
}

impl Local {
    /// The state of a worker with `connections` connections of `streams` slots each.
    pub(crate) fn new(completed: Arc<AtomicU64>, connections: usize, streams: usize) -> Rc<Self> {
        Rc::new(Self {
            queue: RefCell::default(),
            idle: RefCell::new(Idle::new(connections, streams)),
            woken: RefCell::default(),
            stats: RefCell::default(),
            closing: Cell::new(false),
            in_flight: Cell::new(0),
            completed,
            window_index: Cell::new(0),
        })
    }

    /// Waits for the next job for slot `slot`; `None` once the worker is closing and the queue
    /// is empty.
    pub(crate) async fn next_job(&self, slot: usize) -> Option<Job> {
        std::future::poll_fn(|cx| {
            if let Some(j) = self.queue.borrow_mut().pop_front() {
                self.idle.borrow_mut().forget(slot);
                return Poll::Ready(Some(j));
            }
            if self.closing.get() {
                return Poll::Ready(None);
            }
            self.idle.borrow_mut().wait(slot, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Wakes `n` idle slots for as many queued jobs: all the idle slots of the connection
    /// whose turn it is before any of the next, so the jobs of one dispatcher tick leave in
    /// few writes (the streams of one connection write together); then the connection goes
    /// to the back, so connections take turns from tick to tick.
    pub(crate) fn wake(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut woken = std::mem::take(&mut *self.woken.borrow_mut());
        self.idle.borrow_mut().take(n, &mut woken);
        for (_, w) in woken.drain(..) {
            w.wake();
        }
        *self.woken.borrow_mut() = woken;
    }

    /// Marks the worker closing and wakes every idle slot (each then ends once the queue is
    /// empty).
    pub(crate) fn close(&self) {
        self.closing.set(true);
        let wakers = self.idle.borrow_mut().take_all();
        for w in wakers {
            w.wake();
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

/// Idle slots by connection, and the connections with idle slots in the order they got them.
struct Idle {
    /// Per connection: its idle slots and their wakers.
    by_conn: Vec<Vec<(usize, Waker)>>,
    /// Connections that had no idle slot when one became idle, oldest first; an entry may
    /// have none left (taken by `forget`), then it is skipped.
    turns: VecDeque<usize>,
    /// Per connection: whether it is in `turns`.
    queued: Vec<bool>,
    /// Slots per connection (slot `i` belongs to connection `i / streams`).
    streams: usize,
}

impl Idle {
    fn new(connections: usize, streams: usize) -> Self {
        Self {
            by_conn: (0..connections)
                .map(|_| Vec::with_capacity(streams))
                .collect(),
            turns: VecDeque::with_capacity(connections),
            queued: vec![false; connections],
            streams: streams.max(1),
        }
    }

    /// Slot `slot` waits for a job (again: its waker is updated).
    fn wait(&mut self, slot: usize, waker: &Waker) {
        let conn = slot / self.streams;
        let Some(list) = self.by_conn.get_mut(conn) else {
            return;
        };
        match list.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, w)) => w.clone_from(waker),
            None => list.push((slot, waker.clone())),
        }
        if !self.queued[conn] {
            self.queued[conn] = true;
            self.turns.push_back(conn);
        }
    }

    /// Slot `slot` took a job itself: it no longer waits.
    fn forget(&mut self, slot: usize) {
        if let Some(list) = self.by_conn.get_mut(slot / self.streams) {
            list.retain(|(s, _)| *s != slot);
        }
    }

    /// Up to `n` idle slots and their wakers, into `out`: the connection whose turn it is
    /// gives all it has before the next gives any; one left with idle slots goes to the back.
    fn take(&mut self, mut n: usize, out: &mut Vec<(usize, Waker)>) {
        while n > 0 {
            let Some(conn) = self.turns.pop_front() else {
                return;
            };
            let list = &mut self.by_conn[conn];
            let k = n.min(list.len());
            out.extend(list.drain(list.len() - k..));
            n -= k;
            if list.is_empty() {
                self.queued[conn] = false;
            } else {
                self.turns.push_back(conn);
            }
        }
    }

    /// Every idle slot's waker.
    fn take_all(&mut self) -> Vec<Waker> {
        self.turns.clear();
        self.queued.fill(false);
        self.by_conn
            .iter_mut()
            .flat_map(|l| l.drain(..).map(|(_, w)| w))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connections of the slots one `take(n)` gives.
    fn conns(idle: &mut Idle, n: usize) -> Vec<usize> {
        let mut out = Vec::new();
        idle.take(n, &mut out);
        out.iter().map(|(s, _)| s / idle.streams).collect()
    }

    #[test]
    fn a_connection_gives_all_its_idle_slots_before_the_next_and_then_waits_its_turn() {
        // 3 connections × 4 slots, all idle in slot order.
        let mut idle = Idle::new(3, 4);
        for slot in 0..12 {
            idle.wait(slot, Waker::noop());
        }
        assert_eq!(conns(&mut idle, 6), [0, 0, 0, 0, 1, 1]);
        // Connection 1 kept two idle slots and went to the back: 2 is next, then 1, then 0
        // (back with its four after 1), then 2 with the one it kept.
        for slot in 0..4 {
            idle.wait(slot, Waker::noop());
        }
        assert_eq!(conns(&mut idle, 3), [2, 2, 2]);
        assert_eq!(conns(&mut idle, 20), [1, 1, 0, 0, 0, 0, 2]);
        assert_eq!(conns(&mut idle, 1), [0; 0]);
    }

    #[test]
    fn one_job_a_tick_goes_round_the_connections() {
        let mut idle = Idle::new(3, 8);
        for slot in 0..24 {
            idle.wait(slot, Waker::noop());
        }
        let mut seen = Vec::new();
        for _ in 0..6 {
            let mut out = Vec::new();
            idle.take(1, &mut out);
            let (slot, w) = out.pop().unwrap();
            seen.push(slot / 8);
            // The request ends before the next tick: the slot is idle again.
            idle.wait(slot, &w);
        }
        assert_eq!(seen, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_slot_that_took_a_job_itself_is_not_woken_and_waits_once() {
        let mut idle = Idle::new(2, 2);
        idle.wait(0, Waker::noop());
        idle.wait(0, Waker::noop()); // polled again: still one registration
        idle.wait(1, Waker::noop());
        idle.forget(1);
        idle.wait(2, Waker::noop());
        idle.forget(0);
        // Connection 0 has nobody left: its turn gives nothing.
        assert_eq!(conns(&mut idle, 3), [1]);
        idle.wait(3, Waker::noop());
        assert_eq!(idle.take_all().len(), 1);
        assert_eq!(conns(&mut idle, 1), [0; 0]);
    }
}
