//! Who may hold a connection: at most `max_connections_per_ip` per peer
//! address (IPv6 grouped by /64; trusted proxies exempt), and at most
//! `max_connections` in all, where a new connection takes the slot of the one
//! that has waited longest for a request head, or else of the longest-idle
//! kept-alive one, never of one with a request in flight. A connection not
//! read yet is not cut either: its whole head may be in its socket buffer
//! (a burst of clients at once). With nothing to cut, a new connection waits
//! for a slot a short while ([`ADMISSION_WAIT`]), then is closed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ConnectionLimits;
use super::watchdog::{Activity, Phase};

/// How long a new connection waits for a slot when every open one is busy
/// or not read yet; then it is closed. The accept loop waits with it (the
/// next connections wait in the listen backlog).
pub(super) const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// How often a waiting connection looks again for one to cut (one may have
/// been read meanwhile); a freed slot wakes it at once.
const RECHECK: Duration = Duration::from_millis(5);

/// Connections cut and not closed yet, at most: their sockets are still open
/// until their tasks run, and the accept loop can outrun those tasks. Past
/// it a newcomer waits for one to close, so the process never holds more
/// than `max_connections` plus these (within the files start-up reserves).
pub(super) const MAX_CUT_OPEN: usize = 16;

/// The open connections, by peer address.
pub(super) struct Slots {
    max: usize,
    per_address: usize,
    trusted_proxies: Vec<IpNet>,
    open: Mutex<Open>,
    freed: Notify,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    /// Connections cut for a newcomer and not closed yet: no longer counted
    /// against `max`.
    cut: usize,
}

struct Entry {
    address: IpAddr,
    activity: Activity,
    cut: bool,
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its address holds `max_connections_per_ip` already.
    PerAddress,
    /// `max_connections` are open, each with a request in flight.
    AllBusy,
}

impl Refused {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Self::PerAddress => "its address holds MAX_CONNECTIONS_PER_IP connections",
            Self::AllBusy => "MAX_CONNECTIONS connections are open, each with a request in flight",
        }
    }
}

/// A connection's place among the open ones, given back when it drops.
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

impl Slots {
    pub(super) fn new(limits: &ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            max: limits.max_connections,
            per_address: limits.max_connections_per_ip,
            trusted_proxies: limits.trusted_proxies.clone(),
            open: Mutex::default(),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The critical sections cannot panic half-way; a poisoned lock still
        // holds consistent counts.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Slots::admit`], waiting up to [`ADMISSION_WAIT`] while every open
    /// connection is busy or not read yet.
    pub(super) async fn admit_within(
        self: &Arc<Self>,
        peer: IpAddr,
        activity: &Activity,
    ) -> Result<Slot, Refused> {
        let deadline = Instant::now() + ADMISSION_WAIT;
        loop {
            let freed = self.freed.notified();
            match self.admit(peer, activity) {
                Err(Refused::AllBusy) if Instant::now() < deadline => {
                    let recheck = (Instant::now() + RECHECK).min(deadline);
                    tokio::select! {
                        () = freed => {}
                        () = tokio::time::sleep_until(recheck) => {}
                    }
                }
                admitted => return admitted,
            }
        }
    }

    /// A slot for a new connection from `peer` whose deadlines `activity`
    /// keeps, cutting a waiting or idle connection when all are taken.
    pub(super) fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        activity: &Activity,
    ) -> Result<Slot, Refused> {
        let peer = peer.to_canonical();
        let address = group(peer);
        let exempt = self.trusted_proxies.iter().any(|net| net.contains(&peer));
        let mut open = self.lock();
        let held = open.per_address.get(&address).copied().unwrap_or(0);
        if !exempt && held >= self.per_address {
            return Err(Refused::PerAddress);
        }
        if open.connections.len() - open.cut >= self.max
            && (open.cut >= MAX_CUT_OPEN || !open.cut_one())
        {
            return Err(Refused::AllBusy);
        }
        let id = open.next_id;
        open.next_id += 1;
        open.connections.insert(
            id,
            Entry {
                address,
                activity: activity.clone(),
                cut: false,
            },
        );
        *open.per_address.entry(address).or_default() += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            id,
        })
    }

    /// Open connections, those cut but not closed yet included.
    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        self.lock().connections.len()
    }
}

impl Open {
    /// Cuts the connection that has waited longest for a request head, or
    /// else the longest idle one; `false` when every one is busy.
    fn cut_one(&mut self) -> bool {
        // A connection may change phase between the look and the cut (a
        // head completes): look again, a few times.
        for _ in 0..4 {
            let Some((id, seen)) = self.oldest_waiting() else {
                return false;
            };
            let entry = self.connections.get_mut(&id).expect("the entry just seen");
            if entry.activity.try_cut(seen) {
                entry.cut = true;
                self.cut += 1;
                return true;
            }
        }
        false
    }

    /// The connection to cut and the phase it was seen in: the oldest head
    /// wait, else the oldest idle.
    fn oldest_waiting(&self) -> Option<(u64, Phase)> {
        let mut head: Option<(Instant, u64, Phase)> = None;
        let mut idle: Option<(Instant, u64, Phase)> = None;
        for (&id, entry) in &self.connections {
            if entry.cut {
                continue;
            }
            let phase = entry.activity.phase();
            let (best, since) = match phase {
                Phase::Head { since, read: true } => (&mut head, since),
                // Perhaps a whole head in its socket buffer, not parsed yet.
                Phase::Head { read: false, .. } => continue,
                Phase::Idle { since } => (&mut idle, since),
                Phase::Busy { .. } | Phase::Cut => continue,
            };
            if best.is_none_or(|(oldest, _, _)| since < oldest) {
                *best = Some((since, id, phase));
            }
        }
        head.or(idle).map(|(_, id, phase)| (id, phase))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        let Some(entry) = open.connections.remove(&self.id) else {
            return;
        };
        self.slots.freed.notify_waiters();
        if entry.cut {
            open.cut -= 1;
        }
        if let Some(held) = open.per_address.get_mut(&entry.address) {
            *held -= 1;
            if *held == 0 {
                open.per_address.remove(&entry.address);
            }
        }
    }
}

/// The address a peer's connections are counted under: an IPv4 address
/// itself, an IPv6 address's /64 (one host or subscriber usually holds a
/// whole /64).
fn group(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1_u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(max: usize, per_address: usize, trusted: &str) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_connections_per_ip: per_address,
            trusted_proxies: trusted
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect(),
            ..ConnectionLimits::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_holds_at_most_its_cap_unless_it_is_a_trusted_proxy() {
        let slots = Slots::new(&limits(100, 2, "10.0.0.1/32"));
        let held: Vec<_> = (0..2)
            .map(|_| slots.admit(ip("192.0.2.7"), &Activity::new()).unwrap())
            .collect();
        assert_eq!(
            slots.admit(ip("192.0.2.7"), &Activity::new()).err(),
            Some(Refused::PerAddress)
        );
        // The same address mapped into IPv6 counts as itself.
        assert!(
            slots
                .admit(ip("::ffff:192.0.2.7"), &Activity::new())
                .is_err()
        );
        slots.admit(ip("192.0.2.8"), &Activity::new()).unwrap();
        // IPv6 by /64: another host of the same /64 is the same address.
        let _v6: Vec<_> = (0..2)
            .map(|_| {
                slots
                    .admit(ip("2001:db8:1:2::1"), &Activity::new())
                    .unwrap()
            })
            .collect();
        assert!(
            slots
                .admit(ip("2001:db8:1:2:ffff::9"), &Activity::new())
                .is_err()
        );
        slots
            .admit(ip("2001:db8:1:3::1"), &Activity::new())
            .unwrap();
        // A trusted proxy carries everyone's traffic.
        let _proxied: Vec<_> = (0..10)
            .map(|_| slots.admit(ip("10.0.0.1"), &Activity::new()).unwrap())
            .collect();
        // A slot given back is free again.
        drop(held);
        slots.admit(ip("192.0.2.7"), &Activity::new()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_head_wait_is_cut_then_the_oldest_idle_never_a_busy_one() {
        let slots = Slots::new(&limits(3, 100, ""));
        let busy = Activity::new();
        let _busy_slot = slots.admit(ip("192.0.2.1"), &busy).unwrap();
        let _request = busy.request_started();
        tokio::time::advance(Duration::from_secs(1)).await;
        let idle = Activity::new();
        let _idle_slot = slots.admit(ip("192.0.2.2"), &idle).unwrap();
        drop(idle.request_started());
        tokio::time::advance(Duration::from_secs(1)).await;
        let waiting = Activity::new();
        let waiting_slot = slots.admit(ip("192.0.2.3"), &waiting).unwrap();
        waiting.read(true);
        tokio::time::advance(Duration::from_secs(1)).await;

        // Full: the head wait goes first, though the idle one is older.
        let first = Activity::new();
        let first_slot = slots.admit(ip("192.0.2.4"), &first).unwrap();
        first.read(false);
        assert_eq!(waiting.phase(), Phase::Cut);
        assert!(matches!(idle.phase(), Phase::Idle { .. }));
        // Its slot is gone once its connection closes.
        assert_eq!(slots.open(), 4);
        drop(waiting_slot);
        assert_eq!(slots.open(), 3);

        // Then the newcomer waiting for its head, the newest: head waits first.
        let second = Activity::new();
        let _second_slot = slots.admit(ip("192.0.2.5"), &second).unwrap();
        assert_eq!(first.phase(), Phase::Cut);
        drop(first_slot);
        // Now only the idle one and the busy one besides it: the idle one.
        drop(second.request_started());
        let third = Activity::new();
        let _third_slot = slots.admit(ip("192.0.2.6"), &third).unwrap();
        assert!(
            matches!(second.phase(), Phase::Idle { .. }),
            "newer idle kept"
        );
        assert_eq!(idle.phase(), Phase::Cut, "the longest idle is cut");
        assert!(matches!(busy.phase(), Phase::Busy { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_busy_the_newcomer_is_refused() {
        let slots = Slots::new(&limits(2, 100, ""));
        let activities = [Activity::new(), Activity::new()];
        let _slots: Vec<_> = activities
            .iter()
            .map(|a| slots.admit(ip("192.0.2.1"), a).unwrap())
            .collect();
        let _requests: Vec<_> = activities.iter().map(Activity::request_started).collect();
        assert_eq!(
            slots.admit(ip("192.0.2.9"), &Activity::new()).err(),
            Some(Refused::AllBusy)
        );
        for activity in &activities {
            assert!(matches!(activity.phase(), Phase::Busy { .. }));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_not_read_yet_is_not_cut_a_newcomer_waits_a_while_for_a_slot() {
        let slots = Slots::new(&limits(1, 100, ""));
        let unread = Activity::new();
        let slot = slots.admit(ip("192.0.2.1"), &unread).unwrap();
        let started = Instant::now();
        let refused = slots.admit_within(ip("192.0.2.2"), &Activity::new()).await;
        assert_eq!(refused.err(), Some(Refused::AllBusy));
        assert_eq!(started.elapsed(), ADMISSION_WAIT);
        assert!(matches!(unread.phase(), Phase::Head { read: false, .. }));

        // A slot freed while it waits is taken at once.
        let waiting = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move {
                let activity = Activity::new();
                let admitted = slots.admit_within(ip("192.0.2.2"), &activity).await;
                (admitted.is_ok(), Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let freed_at = Instant::now();
        drop(slot);
        let (admitted, at) = waiting.await.unwrap();
        assert!(admitted);
        assert_eq!(at, freed_at, "woken by the freed slot");

        // Read meanwhile and still without a head: now it can be cut.
        let slots = Slots::new(&limits(1, 100, ""));
        let slow = Activity::new();
        let _slot = slots.admit(ip("192.0.2.1"), &slow).unwrap();
        let waiting = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move {
                let activity = Activity::new();
                slots.admit_within(ip("192.0.2.2"), &activity).await.is_ok()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        slow.read(true);
        assert!(waiting.await.unwrap());
        assert_eq!(slow.phase(), Phase::Cut);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_cut_but_not_closed_yet_are_bounded() {
        let slots = Slots::new(&limits(2, 1000, ""));
        let mut kept = Vec::new();
        for i in 0..2 {
            let activity = Activity::new();
            kept.push((slots.admit(ip("192.0.2.1"), &activity).unwrap(), activity));
            kept[i].1.read(true);
        }
        // Each newcomer cuts one (which stays open, its task not run yet).
        for _ in 0..MAX_CUT_OPEN {
            let activity = Activity::new();
            let slot = slots.admit(ip("192.0.2.2"), &activity).unwrap();
            activity.read(true);
            kept.push((slot, activity));
        }
        assert_eq!(slots.open(), 2 + MAX_CUT_OPEN);
        assert_eq!(
            slots.admit(ip("192.0.2.3"), &Activity::new()).err(),
            Some(Refused::AllBusy),
            "no more cuts while {MAX_CUT_OPEN} are still open"
        );
        // One of them closes: a newcomer gets in again.
        let cut = kept
            .iter()
            .position(|(_, activity)| activity.phase() == Phase::Cut)
            .unwrap();
        drop(kept.remove(cut));
        slots.admit(ip("192.0.2.3"), &Activity::new()).unwrap();
    }
}
