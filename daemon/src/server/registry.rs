//! The open connections of one listener, touched at accept and at close only (never per
//! request): the cap on connections, the per-peer share, and the drain.
//!
//! At the cap, a new connection closes the connections idle longest (one that has never sent
//! a request is idle since accept), so a flood of silent connections pushes out its own
//! oldest members instead of locking out a well-behaved client. Finding them is a scan of the
//! open connections, so each eviction takes a little more than it needs (1/32 of the limit):
//! a flood costs one scan per 1/32 of the limit, not one per accept. If every connection is
//! busy, the new one is the one closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;

use super::connection::{CloseReason, Connection, OPEN, REMOVED, now_ms};
use crate::metrics::Metrics;

/// An eviction closes this fraction of the limit beyond what it must (see the module doc).
const EVICTION_SLACK_DIVISOR: usize = 32;
/// At most one log line about closed connections per this many milliseconds; the metric
/// counts every one.
const CLOSE_LOG_INTERVAL_MS: u64 = 10_000;

/// The open connections of one listener.
pub(crate) struct Registry {
    listener: &'static str,
    max_connections: usize,
    /// `None`: no per-peer share (the Unix socket, where every peer looks the same).
    max_per_peer: Option<usize>,
    inner: Mutex<Inner>,
    drained: Notify,
    open: IntGauge,
    closes: Arc<CloseStats>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Connections not closing, in all groups.
    live: usize,
    /// Connections not yet removed (closing ones included), in all groups.
    entries: usize,
    groups: HashMap<Option<IpAddr>, Group>,
}

/// The connections of one peer (or of the Unix socket).
#[derive(Default)]
struct Group {
    live: usize,
    connections: HashMap<u64, Arc<Connection>>,
}

/// A connection admitted to a registry; dropping it removes it (its task has ended).
pub(crate) struct Registered(Arc<Connection>);

impl Registered {
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.registry().remove(&self.0);
    }
}

impl Registry {
    pub(crate) fn new(
        listener: &'static str,
        max_connections: usize,
        max_per_peer: Option<usize>,
        metrics: &Metrics,
        closes: Arc<CloseStats>,
    ) -> Arc<Registry> {
        assert!(max_connections > 0 && max_per_peer != Some(0));
        Arc::new(Registry {
            listener,
            max_connections,
            // A share of the whole listener is no share: the cap alone bounds the peer.
            max_per_peer: max_per_peer.filter(|&share| share < max_connections),
            inner: Mutex::new(Inner::default()),
            drained: Notify::new(),
            open: metrics.connections_open(listener),
            closes,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection just accepted from `peer` (a TCP client's address; `None` on
    /// the Unix socket), closing others if a limit is exceeded. The new connection itself is
    /// closed (check [`Connection::is_open`]) when every other candidate is busy.
    pub(crate) fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Registered {
        let group_key = self.max_per_peer.and(peer.map(peer_key));
        let mut evicted = Vec::new();
        let connection;
        {
            let mut inner = self.lock();
            inner.next_id += 1;
            connection = Arc::new(Connection::new(inner.next_id, group_key, self.clone()));
            inner.live += 1;
            inner.entries += 1;
            let group = inner.groups.entry(group_key).or_default();
            group.live += 1;
            group.connections.insert(connection.id, connection.clone());
            let newcomer = connection.id;
            let others = |c: &&Arc<Connection>| c.id != newcomer;
            if let (Some(_), Some(share)) = (group_key, self.max_per_peer)
                && group.live > share
            {
                // The slack is taken from the others only: the newcomer is closed only when
                // too few of them are idle to make room at all.
                let needed = group.live - share;
                let victims = idle_longest(
                    group.connections.values().filter(others),
                    needed + share / EVICTION_SLACK_DIVISOR,
                );
                let short = victims.len() < needed;
                for victim in victims.into_iter().chain(short.then(|| connection.clone())) {
                    if mark(&mut inner, &victim, CloseReason::MaxConnectionsPerPeer) {
                        evicted.push((victim, CloseReason::MaxConnectionsPerPeer));
                    }
                }
            }
            if inner.live > self.max_connections {
                let needed = inner.live - self.max_connections;
                let all = inner
                    .groups
                    .values()
                    .flat_map(|g| g.connections.values())
                    .filter(others);
                let victims =
                    idle_longest(all, needed + self.max_connections / EVICTION_SLACK_DIVISOR);
                let short = victims.len() < needed;
                for victim in victims.into_iter().chain(short.then(|| connection.clone())) {
                    if mark(&mut inner, &victim, CloseReason::MaxConnections) {
                        evicted.push((victim, CloseReason::MaxConnections));
                    }
                }
            }
        }
        self.open.inc();
        for (victim, reason) in evicted {
            victim.wake();
            self.closes.record(reason, victim.peer, self.listener);
        }
        Registered(connection)
    }

    /// Marks `connection` as closing for `reason`; false if it already was.
    pub(super) fn mark_closing(&self, connection: &Connection, reason: CloseReason) -> bool {
        let marked = mark(&mut self.lock(), connection, reason);
        if marked && reason != CloseReason::Shutdown {
            self.closes.record(reason, connection.peer, self.listener);
        }
        marked
    }

    fn remove(&self, connection: &Connection) {
        let drained = {
            let mut inner = self.lock();
            let was_live = connection.close.swap(REMOVED, Ordering::AcqRel) == OPEN;
            if was_live {
                inner.live -= 1;
            }
            inner.entries -= 1;
            if let Some(group) = inner.groups.get_mut(&connection.peer) {
                if was_live {
                    group.live -= 1;
                }
                group.connections.remove(&connection.id);
                if group.connections.is_empty() {
                    inner.groups.remove(&connection.peer);
                }
            }
            inner.entries == 0
        };
        self.open.dec();
        if drained {
            self.drained.notify_waiters();
        }
    }

    /// Connections open (closing ones included).
    pub(crate) fn len(&self) -> usize {
        self.lock().entries
    }

    /// Asks every connection to close (gracefully: requests in flight finish).
    pub(crate) fn close_all(&self) {
        let closing: Vec<Arc<Connection>> = {
            let mut inner = self.lock();
            let all: Vec<Arc<Connection>> = inner
                .groups
                .values()
                .flat_map(|g| g.connections.values().cloned())
                .collect();
            all.into_iter()
                .filter(|c| mark(&mut inner, c, CloseReason::Shutdown))
                .collect()
        };
        for connection in closing {
            connection.wake();
        }
    }

    /// Resolves once every connection has been removed.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Marks `connection` closing for `reason` in `inner`'s counts; false if it was not open.
fn mark(inner: &mut Inner, connection: &Connection, reason: CloseReason) -> bool {
    if connection
        .close
        .compare_exchange(OPEN, reason as u8, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    inner.live -= 1;
    if let Some(group) = inner.groups.get_mut(&connection.peer) {
        group.live -= 1;
    }
    true
}

/// Up to `count` of `connections` that are open and have nothing in flight, idle longest
/// first (the newest connection last among equals).
fn idle_longest<'a>(
    connections: impl Iterator<Item = &'a Arc<Connection>>,
    count: usize,
) -> Vec<Arc<Connection>> {
    let mut idle: Vec<&Arc<Connection>> = connections
        .filter(|c| c.is_open() && c.in_flight() == 0)
        .collect();
    if idle.len() > count {
        idle.select_nth_unstable_by_key(count, |c| (c.idle_since_ms(), c.id));
        idle.truncate(count);
    }
    idle.into_iter().cloned().collect()
}

/// Whom the per-peer share counts a client against: its IPv4 address, or the /64 of its IPv6
/// address (one host commonly holds a whole /64, so a per-address share would not bound it).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

/// The closes of every listener: counted in `paygate_connections_closed_total`, and logged at
/// most once per [`CLOSE_LOG_INTERVAL_MS`] with the counts since the last line, so that a
/// flood does not become a log flood.
pub(crate) struct CloseStats {
    counters: Vec<IntCounter>,
    unlogged: [AtomicU64; CloseReason::COUNTED.len()],
    /// When the last line was logged, plus one (0: never).
    logged_at: AtomicU64,
}

impl CloseStats {
    pub(crate) fn new(metrics: &Metrics) -> CloseStats {
        CloseStats {
            counters: CloseReason::COUNTED
                .iter()
                .map(|reason| metrics.connections_closed(reason.label()))
                .collect(),
            unlogged: Default::default(),
            logged_at: AtomicU64::new(0),
        }
    }

    fn record(&self, reason: CloseReason, peer: Option<IpAddr>, listener: &str) {
        let Some(index) = CloseReason::COUNTED.iter().position(|r| *r == reason) else {
            return;
        };
        self.counters[index].inc();
        self.unlogged[index].fetch_add(1, Ordering::Relaxed);
        let now = now_ms() + 1;
        let last = self.logged_at.load(Ordering::Relaxed);
        if (last != 0 && now < last + CLOSE_LOG_INTERVAL_MS)
            || self
                .logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let [head, idle, body, full, share] =
            std::array::from_fn(|i| self.unlogged[i].swap(0, Ordering::Relaxed));
        if full + share > 0 {
            tracing::warn!(
                listener,
                max_connections = full,
                max_connections_per_peer = share,
                request_head_timeout = head,
                idle_timeout = idle,
                body_timeout = body,
                last_peer = ?peer,
                "connections closed to stay within the [server] connection limits since the last such line (paygate_connections_closed_total counts them)"
            );
        } else {
            tracing::debug!(
                listener,
                request_head_timeout = head,
                idle_timeout = idle,
                body_timeout = body,
                "connections closed by their deadlines since the last such line"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::connection::InFlight;

    fn registry(max: usize, per_peer: Option<usize>) -> Arc<Registry> {
        let metrics = Metrics::new();
        let closes = Arc::new(CloseStats::new(&metrics));
        Registry::new("tcp", max, per_peer, &metrics, closes)
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn at_the_cap_the_idle_longest_go_first() {
        let registry = registry(4, None);
        let first: Vec<Registered> = (0..4).map(|_| registry.admit(ip(1))).collect();
        assert!(first.iter().all(|r| r.connection().is_open()));
        let newest = registry.admit(ip(2));
        assert!(newest.connection().is_open());
        assert!(
            !first[0].connection().is_open(),
            "the oldest idle one is closed"
        );
        assert!(first[1..].iter().all(|r| r.connection().is_open()));
        assert_eq!(registry.len(), 5, "closing connections count until removed");
        drop(first);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn busy_connections_are_kept_and_the_newcomer_refused() {
        let registry = registry(2, None);
        let busy: Vec<Registered> = (0..2).map(|_| registry.admit(ip(1))).collect();
        let _requests: Vec<InFlight> = busy
            .iter()
            .map(|r| InFlight::begin(r.connection()))
            .collect();
        let newcomer = registry.admit(ip(1));
        assert!(!newcomer.connection().is_open());
        assert!(busy.iter().all(|r| r.connection().is_open()));
    }

    #[test]
    fn a_peer_beyond_its_share_loses_its_own_oldest() {
        let registry = registry(100, Some(3));
        let other = registry.admit(ip(9));
        let mine: Vec<Registered> = (0..4).map(|_| registry.admit(ip(1))).collect();
        assert!(other.connection().is_open());
        assert!(!mine[0].connection().is_open());
        assert!(mine[1..].iter().all(|r| r.connection().is_open()));
    }

    #[test]
    fn ipv6_peers_are_grouped_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(peer_key(mapped), ip(1).unwrap());
    }
}
