//! Which connections are open, what each is doing, and which one makes room when the limit is
//! reached.
//!
//! Invariants: at most `max` connections are registered at once (a connection is registered
//! from accept until its task ends); a new connection at the limit waits until one is gone, and
//! makes one go if any is idle: the one idle longest, one at a time. A connection with a request
//! in flight is never chosen, nor one younger than [`EVICTION_GRACE`], so that a burst of new
//! connections cannot close a client's before its handshake and first request are through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;
use crate::telemetry::{self, Telemetry};

/// How often a new connection waiting at the limit looks again (besides being woken when a
/// connection goes), so that one whose request just finished can make room.
const ADMISSION_RECHECK: Duration = Duration::from_millis(50);

/// A connection is not chosen to make room before it is this old.
const EVICTION_GRACE: Duration = Duration::from_millis(250);

/// A client may cancel this many more requests on one connection than it lets finish before
/// the connection is closed.
const CANCELLED_REQUEST_ALLOWANCE: u64 = 100;

/// Why the gateway closed a connection (the `reason` label of
/// `pushgateway_http_connections_closed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The TLS handshake, the first request or a request head took longer than
    /// `--web.read-header-timeout`.
    HeaderTimeout,
    /// No request for `--web.idle-timeout`.
    IdleTimeout,
    /// Requests in flight, but no byte read or written for `--web.idle-timeout`.
    Stalled,
    /// Idle longest when a new connection came at `--web.max-connections`.
    Evicted,
    /// Many more requests cancelled than finished (HTTP/2 rapid reset).
    CancelledRequests,
}

impl CloseReason {
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Stalled => "stalled",
            CloseReason::Evicted => "evicted",
            CloseReason::CancelledRequests => "cancelled_requests",
        }
    }
}

/// What one connection is doing. Times are milliseconds since the registry's start, plus one
/// (0: never).
pub struct Activity {
    base: Instant,
    accepted: u64,
    h2: AtomicBool,
    in_flight: AtomicU32,
    answered: AtomicU64,
    cancelled: AtomicU64,
    idle_since: AtomicU64,
    /// When the first byte of an HTTP/1 request head came, while no request was in flight.
    head_started: AtomicU64,
    last_io: AtomicU64,
    /// Woken when a deadline may have come nearer (a request finished, a head began).
    changed: Notify,
    /// Set once the connection is to be closed at once; `close` wakes its task.
    closing: AtomicBool,
    close: Notify,
    /// Chosen to make room (so the registry waits for it instead of choosing another).
    evicted: AtomicBool,
}

impl Activity {
    fn new(base: Instant) -> Activity {
        let now = millis(base);
        Activity {
            base,
            accepted: now,
            h2: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            answered: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(0),
            last_io: AtomicU64::new(now),
            changed: Notify::new(),
            closing: AtomicBool::new(false),
            close: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }

    fn at(&self, millis: u64) -> Instant {
        self.base + Duration::from_millis(millis.saturating_sub(1))
    }

    pub fn accepted_at(&self) -> Instant {
        self.at(self.accepted)
    }

    pub fn set_h2(&self) {
        self.h2.store(true, Ordering::Relaxed);
    }

    /// Bytes went in (`read`) or out.
    pub fn io(&self, read: bool) {
        let now = millis(self.base);
        self.last_io.store(now, Ordering::Relaxed);
        if read
            && !self.h2.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(now, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// A request was handed to the application.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
    }

    /// A request is done: its answer was sent (`answered`), or it was dropped before (the
    /// client cancelled it, or the connection went). Closes a connection whose client cancels
    /// far more requests than it lets finish.
    pub fn request_done(&self, answered: bool) {
        if answered {
            self.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
            if cancelled > self.answered.load(Ordering::Relaxed) + CANCELLED_REQUEST_ALLOWANCE {
                self.close_now();
            }
        }
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(millis(self.base), Ordering::Relaxed);
            self.head_started.store(0, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// Whether the last close was asked because of cancelled requests.
    pub fn too_many_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
            > self.answered.load(Ordering::Relaxed) + CANCELLED_REQUEST_ALLOWANCE
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When the connection's current state runs out, and why it would be closed then.
    pub fn deadline(&self, limits: &Limits) -> (Instant, CloseReason) {
        if !self.idle() {
            let last_io = self.at(self.last_io.load(Ordering::Relaxed));
            return (last_io + limits.idle_timeout, CloseReason::Stalled);
        }
        let requests =
            self.answered.load(Ordering::Relaxed) + self.cancelled.load(Ordering::Relaxed);
        if requests == 0 {
            return (
                self.accepted_at() + limits.read_header_timeout,
                CloseReason::HeaderTimeout,
            );
        }
        let head_started = self.head_started.load(Ordering::Relaxed);
        if head_started != 0 {
            return (
                self.at(head_started) + limits.read_header_timeout,
                CloseReason::HeaderTimeout,
            );
        }
        let idle_since = self.at(self.idle_since.load(Ordering::Relaxed));
        (idle_since + limits.idle_timeout, CloseReason::IdleTimeout)
    }

    /// Completes when the connection's deadline may have come nearer.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Asks the connection's task to close it at once.
    pub fn close_now(&self) {
        self.closing.store(true, Ordering::Release);
        self.close.notify_one();
    }

    /// Completes once the connection is to be closed at once.
    pub async fn closed(&self) {
        while !self.closing.load(Ordering::Acquire) {
            self.close.notified().await;
        }
    }
}

fn millis(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

struct Open {
    next_id: u64,
    connections: HashMap<u64, Arc<Activity>>,
    /// Connections chosen to make room that have not gone yet.
    evicting: usize,
}

pub struct Registry {
    base: Instant,
    max: usize,
    open: Mutex<Open>,
    gone: Notify,
    telemetry: Arc<Telemetry>,
}

impl Registry {
    pub fn new(max: usize, telemetry: Arc<Telemetry>) -> Registry {
        telemetry.set(telemetry::HTTP_CONNECTIONS, &[], 0.0);
        Registry {
            base: Instant::now(),
            max: max.max(1),
            open: Mutex::new(Open {
                next_id: 0,
                connections: HashMap::new(),
                evicting: 0,
            }),
            gone: Notify::new(),
            telemetry,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, once there is room for it.
    pub async fn admit(self: &Arc<Self>) -> Slot {
        loop {
            if let Some(slot) = self.try_admit() {
                return slot;
            }
            let _ = tokio::time::timeout(ADMISSION_RECHECK, self.gone.notified()).await;
        }
    }

    fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.lock();
        if open.connections.len() >= self.max {
            let now = Instant::now();
            if open.evicting == 0
                && let Some(victim) = open
                    .connections
                    .values()
                    .filter(|a| {
                        a.idle()
                            && !a.closing.load(Ordering::Acquire)
                            && a.accepted_at() + EVICTION_GRACE <= now
                    })
                    .min_by_key(|a| a.idle_since.load(Ordering::Relaxed))
                    .cloned()
            {
                victim.evicted.store(true, Ordering::Release);
                victim.close_now();
                open.evicting += 1;
                self.closed(CloseReason::Evicted);
            }
            return None;
        }
        let id = open.next_id;
        open.next_id += 1;
        let activity = Arc::new(Activity::new(self.base));
        open.connections.insert(id, activity.clone());
        self.telemetry.add(telemetry::HTTP_CONNECTIONS, &[], 1.0);
        Some(Slot {
            id,
            activity,
            registry: self.clone(),
        })
    }

    /// Counts a connection the gateway closed.
    pub fn closed(&self, reason: CloseReason) {
        self.telemetry.increment(
            telemetry::HTTP_CONNECTIONS_CLOSED,
            &[("reason", reason.label())],
        );
    }

    /// Closes every connection at once.
    pub fn close_all(&self) {
        for activity in self.lock().connections.values() {
            activity.close_now();
        }
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().connections.len()
    }

    /// Waits until no connection is open.
    pub async fn all_gone(&self) {
        while self.len() > 0 {
            let _ = tokio::time::timeout(ADMISSION_RECHECK, self.gone.notified()).await;
        }
    }
}

/// One registered connection; dropping it unregisters the connection.
pub struct Slot {
    id: u64,
    activity: Arc<Activity>,
    registry: Arc<Registry>,
}

impl Slot {
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        open.connections.remove(&self.id);
        if self.activity.evicted.load(Ordering::Acquire) {
            open.evicting -= 1;
        }
        drop(open);
        self.registry
            .telemetry
            .add(telemetry::HTTP_CONNECTIONS, &[], -1.0);
        self.registry.gone.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_what_the_connection_does() {
        let activity = Activity::new(Instant::now());
        let limits = limits();
        let (at, reason) = activity.deadline(&limits);
        assert_eq!(reason, CloseReason::HeaderTimeout);
        assert_eq!(at, activity.accepted_at() + limits.read_header_timeout);

        activity.request_started();
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.io(false);
        let (at, reason) = activity.deadline(&limits);
        assert_eq!(reason, CloseReason::Stalled);
        assert!(at >= Instant::now() + limits.idle_timeout - Duration::from_millis(2));

        activity.request_done(true);
        let (_, reason) = activity.deadline(&limits);
        assert_eq!(reason, CloseReason::IdleTimeout);

        // The first byte of the next HTTP/1 head starts the header clock.
        activity.io(true);
        let (at, reason) = activity.deadline(&limits);
        assert_eq!(reason, CloseReason::HeaderTimeout);
        assert!(at <= Instant::now() + limits.read_header_timeout);

        // Over HTTP/2, bytes without a stream are not a request head.
        let h2 = Activity::new(Instant::now());
        h2.set_h2();
        h2.request_started();
        h2.request_done(true);
        h2.io(true);
        assert_eq!(h2.deadline(&limits).1, CloseReason::IdleTimeout);
    }

    #[tokio::test]
    async fn cancelling_far_more_than_finishing_closes() {
        let activity = Activity::new(Instant::now());
        for _ in 0..10 {
            activity.request_started();
            activity.request_done(true);
        }
        for _ in 0..(CANCELLED_REQUEST_ALLOWANCE + 10) {
            activity.request_started();
            activity.request_done(false);
        }
        assert!(!activity.closing.load(Ordering::Acquire));
        activity.request_started();
        activity.request_done(false);
        assert!(activity.too_many_cancelled());
        activity.closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_longest_idle_connection_makes_room() {
        let telemetry = Arc::new(Telemetry::new(crate::telemetry::BuildInfo::current()));
        let registry = Arc::new(Registry::new(2, telemetry));
        let oldest = registry.admit().await;
        tokio::time::advance(Duration::from_millis(5)).await;
        let busy = registry.admit().await;
        busy.activity().request_started();
        // Too young to be closed for a newcomer.
        assert!(registry.try_admit().is_none());
        assert!(!oldest.activity().closing.load(Ordering::Acquire));
        tokio::time::advance(EVICTION_GRACE).await;
        assert!(registry.try_admit().is_none());
        assert!(oldest.activity().closing.load(Ordering::Acquire));
        assert!(!busy.activity().closing.load(Ordering::Acquire));
        // Only one is chosen at a time, and the newcomer waits until it is gone.
        assert!(registry.try_admit().is_none());
        drop(oldest);
        let third = registry.try_admit().expect("room once the idle one went");
        // Every connection busy: nobody is chosen.
        third.activity().request_started();
        assert!(registry.try_admit().is_none());
        assert!(!third.activity().closing.load(Ordering::Acquire));
        assert_eq!(registry.len(), 2);
    }
}
