//! Deadlock detection: a wait-for graph checked at the blocking call, plus lockdep-style
//! lock-order checking and a registry of live primitives for reports.
//!
//! Every primitive that can be waited on is a [`Resource`]. Before a thread goes to sleep on one, it
//! calls [`begin_wait`]: the wait is recorded and the graph is searched, under one global mutex, for a
//! set of threads that can never wake: the resource's holders, each of them waiting (untimed) on a
//! resource whose holders are in turn stuck, back to the caller. Only acquires that must sleep pay for
//! this; the uncontended fast path records nothing but the owner.
//!
//! A cycle can only close when a thread starts to wait (acquiring never happens while waiting), so a
//! check at that moment sees every deadlock as it forms.
//!
//! One wait is not decided at once: a thread re-acquiring a `Lock` it holds itself ([`Verdict::SelfWait`]).
//! Any thread may release a `Lock`, so this is valid Python when another thread will release it (the
//! lock-as-signal idiom). It is certainly a deadlock only when no other thread can ever release it:
//! [`self_wait_stuck`] checks that every other live thread (the binding lists them) is itself stuck
//! behind the caller; the binding runs that check when the wait starts and again while it lasts, and
//! warns after a grace period ([`grace`]) when it cannot decide. Waits with a timeout are never counted as
//! stuck (they end by themselves), and resources that any thread may release (a `Lock` released by a
//! thread that did not acquire it, a semaphore used as a signal) report no holders, so the detector
//! errs towards silence, never towards a false alarm on code that would have made progress.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::thread::ThreadId;

/// What happens when a blocking call would deadlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// No tracking at all.
    Off = 0,
    /// Report the deadlock (the binding emits a warning), then block as the stdlib would.
    Warn = 1,
    /// Fail the blocking call with the report. A `Lock` re-acquired by its holder
    /// ([`Verdict::SelfWait`]) fails only once no other thread can release it; until then the
    /// binding lets it wait and warns after [`grace`].
    Raise = 2,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Raise as u8);
/// The default of [`grace`], in milliseconds.
pub const DEFAULT_GRACE_MS: u64 = 5_000;
static GRACE_MS: AtomicU64 = AtomicU64::new(DEFAULT_GRACE_MS);
static ORDER_CHECKING: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The current detection mode.
#[inline]
#[must_use]
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        0 => Mode::Off,
        1 => Mode::Warn,
        _ => Mode::Raise,
    }
}

/// Sets the detection mode for every primitive in the process.
pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// How long a thread may wait to re-acquire a `Lock` it holds ([`Verdict::SelfWait`]) before the
/// binding warns that it may be deadlocked (when it cannot prove it is).
#[must_use]
pub fn grace() -> Duration {
    Duration::from_millis(GRACE_MS.load(Ordering::Relaxed))
}

/// Sets [`grace`] for every thread in the process.
pub fn set_grace(grace: Duration) {
    GRACE_MS.store(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// A fresh, process-unique resource id (never reused, unlike addresses).
#[must_use]
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A primitive that threads can wait on.
pub trait Resource: Send + Sync + 'static {
    /// Process-unique id from [`next_id`].
    fn id(&self) -> u64;
    /// Kind shown in reports: `"Lock"`, `"RLock"`, `"Semaphore"`, ...
    fn kind(&self) -> &'static str;
    /// The user-given name, if any.
    fn name(&self) -> Option<&str>;
    /// Appends the threads that must release this resource before a waiter can proceed. Appends
    /// nothing when a waiter could proceed now, or when the resource does not know who can release
    /// it (then no deadlock is ever reported through it).
    fn holders(&self, out: &mut Vec<ThreadId>);
    /// Upcast for bindings that attach data of their own (acquisition sites).
    fn as_any(&self) -> &dyn Any;

    /// Whether a thread waiting on this resource while it alone holds it may be waiting for itself
    /// ([`Verdict::SelfWait`]). True for locks; false for semaphores, where taking more permits than
    /// one holds and waiting for another thread to release some is an ordinary pattern.
    fn self_wait_suspect(&self) -> bool {
        true
    }

    /// `Lock 'db'`, or `Lock #12` for an unnamed one.
    fn label(&self) -> String {
        match self.name() {
            Some(name) => format!("{} '{}'", self.kind(), name),
            None => format!("{} #{}", self.kind(), self.id()),
        }
    }
}

/// One recorded wait.
#[derive(Clone)]
pub struct Wait {
    /// What the thread waits for.
    pub resource: Arc<dyn Resource>,
    /// Whether the wait has a timeout (such waits end by themselves and never count as stuck).
    pub timed: bool,
    /// When the wait began.
    pub since: Instant,
}

/// One thread of a deadlock: it waits for `waits_for`, held by `holders`.
#[derive(Clone)]
pub struct Edge {
    /// The waiting thread.
    pub thread: ThreadId,
    /// The resource it waits for.
    pub waits_for: Arc<dyn Resource>,
    /// The threads holding that resource.
    pub holders: Vec<ThreadId>,
}

/// A set of threads that wait for each other forever; the first edge is the thread that closed it.
#[derive(Clone)]
pub struct Deadlock {
    /// The waits that make up the deadlock, starting with the caller's.
    pub edges: Vec<Edge>,
}

impl Deadlock {
    /// A plain-text summary, one line per thread, using `thread_name` to label threads.
    pub fn summary(&self, thread_name: &dyn Fn(ThreadId) -> String) -> String {
        let mut out = String::new();
        for edge in &self.edges {
            let holders: Vec<String> = edge.holders.iter().map(|&t| thread_name(t)).collect();
            let _ = writeln!(
                out,
                "{} waits for {}, held by {}",
                thread_name(edge.thread),
                edge.waits_for.label(),
                holders.join(", ")
            );
        }
        out
    }
}

static WAITS: LazyLock<Mutex<HashMap<ThreadId, Wait>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Removes the caller's wait record when dropped.
#[must_use = "the wait is unrecorded when the guard drops"]
pub struct WaitGuard {
    thread: Option<ThreadId>,
}

impl WaitGuard {
    /// A guard that records nothing (detection is off).
    pub const fn none() -> Self {
        Self { thread: None }
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if let Some(thread) = self.thread {
            WAITS.lock().remove(&thread);
        }
    }
}

/// What [`begin_wait`] concluded about a wait.
#[derive(Clone)]
pub enum Verdict {
    /// Nothing is known to block this wait forever.
    Clear,
    /// The wait closes a deadlock.
    Deadlock(Deadlock),
    /// The caller waits, without a timeout, for a `Lock` it holds itself: a deadlock unless another
    /// thread releases it. Decide with [`self_wait_stuck`].
    SelfWait,
}

impl Verdict {
    /// The deadlock, if the verdict is one.
    #[must_use]
    pub fn into_deadlock(self) -> Option<Deadlock> {
        match self {
            Self::Deadlock(d) => Some(d),
            Self::Clear | Self::SelfWait => None,
        }
    }
}

/// Records that `thread` is about to sleep on `resource` and looks for a deadlock that this wait
/// would close. The wait stays recorded (for [`waits`] and other threads' checks) until the guard
/// drops, also when a deadlock is returned, so a caller in warn mode can go on waiting.
pub fn begin_wait(thread: ThreadId, resource: Arc<dyn Resource>, timed: bool) -> (WaitGuard, Verdict) {
    let mut waits = WAITS.lock();
    waits.insert(
        thread,
        Wait {
            resource: Arc::clone(&resource),
            timed,
            since: Instant::now(),
        },
    );
    let verdict = if sole_holder(thread, &resource) {
        // A timed wait ends by itself, and a semaphore's holder may wait for others' permits.
        if timed || !resource.self_wait_suspect() {
            Verdict::Clear
        } else {
            Verdict::SelfWait
        }
    } else {
        find(&waits, thread, &resource).map_or(Verdict::Clear, Verdict::Deadlock)
    };
    drop(waits);
    (WaitGuard { thread: Some(thread) }, verdict)
}

fn sole_holder(thread: ThreadId, resource: &Arc<dyn Resource>) -> bool {
    let mut holders = Vec::new();
    resource.holders(&mut holders);
    !holders.is_empty() && holders.iter().all(|&h| h == thread)
}

/// Whether `thread`, waiting without a timeout for `resource` that it alone holds
/// ([`Verdict::SelfWait`]), can never wake: every thread in `others` (each other live thread of the
/// process, as the caller knows them) is itself stuck behind it, waiting without a timeout for a
/// resource whose holders are stuck. Returns the proof: the caller's own edge first, then those of
/// the other threads. An empty `others` (the caller is the only thread) is enough.
#[must_use]
pub fn self_wait_stuck(thread: ThreadId, resource: &Arc<dyn Resource>, others: &[ThreadId]) -> Option<Deadlock> {
    let waits = WAITS.lock();
    if !sole_holder(thread, resource) {
        return None;
    }
    let mut edges = vec![Edge {
        thread,
        waits_for: Arc::clone(resource),
        holders: vec![thread],
    }];
    for &other in others {
        if other == thread || edges.iter().any(|e| e.thread == other) {
            continue;
        }
        let next = match waits.get(&other) {
            Some(w) if !w.timed => Arc::clone(&w.resource),
            _ => return None, // running, or waiting with a timeout: it may still release
        };
        let mut visiting = vec![thread, other];
        if !stuck(&waits, thread, other, &next, &mut visiting, &mut edges) {
            return None;
        }
    }
    Some(Deadlock { edges })
}

fn find(waits: &HashMap<ThreadId, Wait>, start: ThreadId, resource: &Arc<dyn Resource>) -> Option<Deadlock> {
    let mut edges = Vec::new();
    let mut visiting = vec![start];
    stuck(waits, start, start, resource, &mut visiting, &mut edges).then_some(Deadlock { edges })
}

/// Whether `thread`, waiting on `resource`, can never wake given that `start` is blocked. Pushes the
/// edges that prove it.
fn stuck(
    waits: &HashMap<ThreadId, Wait>,
    start: ThreadId,
    thread: ThreadId,
    resource: &Arc<dyn Resource>,
    visiting: &mut Vec<ThreadId>,
    edges: &mut Vec<Edge>,
) -> bool {
    let mut holders = Vec::new();
    resource.holders(&mut holders);
    holders.sort_unstable();
    holders.dedup();
    if holders.is_empty() {
        return false;
    }
    if thread == start && holders == [start] {
        return false; // a self-wait: decided by `begin_wait` and `self_wait_stuck`
    }
    let mark = edges.len();
    edges.push(Edge {
        thread,
        waits_for: Arc::clone(resource),
        holders: holders.clone(),
    });
    for holder in holders {
        if holder == start {
            continue;
        }
        let next = match waits.get(&holder) {
            Some(w) if !w.timed && !visiting.contains(&holder) => Arc::clone(&w.resource),
            // Running, waiting with a timeout, or in a cycle that does not involve `start`: the
            // holder may still release, so do not report.
            _ => {
                edges.truncate(mark);
                return false;
            }
        };
        visiting.push(holder);
        let ok = stuck(waits, start, holder, &next, visiting, edges);
        visiting.pop();
        if !ok {
            edges.truncate(mark);
            return false;
        }
    }
    true
}

/// Every deadlock among the recorded waits, each reported once (for dumps of a running process,
/// where the check at the blocking call already warned, or detection was in warn mode). The first
/// edge of each is its waiting thread with the lowest id. Threads blocked behind a deadlock without
/// being part of it are not reported.
#[must_use]
pub fn deadlocks() -> Vec<Deadlock> {
    let waits = WAITS.lock();
    let mut threads: Vec<ThreadId> = waits.iter().filter(|(_, w)| !w.timed).map(|(t, _)| *t).collect();
    threads.sort_unstable();
    let mut found: Vec<Deadlock> = Vec::new();
    for thread in threads {
        if found.iter().any(|d| d.edges.iter().any(|e| e.thread == thread)) {
            continue;
        }
        if let Some(d) = find(&waits, thread, &waits[&thread].resource) {
            found.push(d);
        }
    }
    found
}

/// The threads waiting, without a timeout, for a lock that they alone hold ([`Verdict::SelfWait`]):
/// a deadlock unless another thread releases it. For dumps.
#[must_use]
pub fn self_waits() -> Vec<Edge> {
    let waits = WAITS.lock();
    let mut out: Vec<Edge> = waits
        .iter()
        .filter(|(t, w)| !w.timed && w.resource.self_wait_suspect() && sole_holder(**t, &w.resource))
        .map(|(t, w)| Edge {
            thread: *t,
            waits_for: Arc::clone(&w.resource),
            holders: vec![*t],
        })
        .collect();
    out.sort_unstable_by_key(|e| e.thread);
    out
}

/// A snapshot of every recorded wait.
#[must_use]
pub fn waits() -> Vec<(ThreadId, Wait)> {
    WAITS.lock().iter().map(|(t, w)| (*t, w.clone())).collect()
}

static REGISTRY: LazyLock<Mutex<HashMap<u64, Weak<dyn Resource>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Makes `resource` visible to [`live_resources`] until [`unregister`] is called with its id.
pub fn register(resource: &Arc<dyn Resource>) {
    REGISTRY.lock().insert(resource.id(), Arc::downgrade(resource));
}

/// Removes a resource from the registry (call from its `Drop`).
pub fn unregister(id: u64) {
    REGISTRY.lock().remove(&id);
}

/// Every registered resource still alive.
#[must_use]
pub fn live_resources() -> Vec<Arc<dyn Resource>> {
    REGISTRY.lock().values().filter_map(Weak::upgrade).collect()
}

/// Whether lock-order checking is on.
#[inline]
#[must_use]
pub fn order_checking() -> bool {
    ORDER_CHECKING.load(Ordering::Relaxed)
}

/// An acquisition order that contradicts one seen before: a possible deadlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inversion {
    /// Label of the lock being acquired.
    pub acquiring: String,
    /// Label of the lock already held.
    pub held: String,
    /// The earlier order, as labels: `acquiring` was taken before ... before `held`.
    pub earlier: Vec<String>,
}

#[derive(Default)]
struct Order {
    held: HashMap<ThreadId, Vec<u64>>,
    after: HashMap<u64, HashSet<u64>>,
    labels: HashMap<u64, String>,
    reported: HashSet<(u64, u64)>,
}

impl Order {
    /// A path `from` → ... → `to` in the order graph, if any.
    fn path(&self, from: u64, to: u64) -> Option<Vec<u64>> {
        let mut prev: HashMap<u64, u64> = HashMap::new();
        let mut stack = vec![from];
        let mut seen = HashSet::from([from]);
        while let Some(node) = stack.pop() {
            if node == to {
                let mut path = vec![to];
                let mut cur = to;
                while let Some(&p) = prev.get(&cur) {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &next in self.after.get(&node).into_iter().flatten() {
                if seen.insert(next) {
                    prev.insert(next, node);
                    stack.push(next);
                }
            }
        }
        None
    }
}

static ORDER: LazyLock<Mutex<Order>> = LazyLock::new(|| Mutex::new(Order::default()));

/// Turns lock-order checking on or off; turning it off forgets what was recorded.
pub fn set_order_checking(on: bool) {
    ORDER_CHECKING.store(on, Ordering::Relaxed);
    if !on {
        *ORDER.lock() = Order::default();
    }
}

/// Records that `thread` took `resource` (the first level of a re-entrant lock only) and returns the
/// inversions this order reveals, each reported once per pair of locks.
pub fn order_acquired(thread: ThreadId, resource: &dyn Resource) -> Vec<Inversion> {
    let id = resource.id();
    let mut order = ORDER.lock();
    order.labels.entry(id).or_insert_with(|| resource.label());
    let held = order.held.get(&thread).cloned().unwrap_or_default();
    let mut found = Vec::new();
    for &h in &held {
        if h == id {
            continue;
        }
        if let Some(path) = order.path(id, h) {
            if order.reported.insert((h, id)) {
                let labels = &order.labels;
                let label = |x: u64| labels.get(&x).cloned().unwrap_or_else(|| format!("#{x}"));
                found.push(Inversion {
                    acquiring: label(id),
                    held: label(h),
                    earlier: path.into_iter().map(label).collect(),
                });
            }
        }
        order.after.entry(h).or_default().insert(id);
    }
    order.held.entry(thread).or_default().push(id);
    found
}

/// Records that `resource` was released (fully), by `thread` or, failing that, by whichever thread
/// recorded it.
pub fn order_released(thread: ThreadId, id: u64) {
    let mut order = ORDER.lock();
    let remove = |list: &mut Vec<u64>| match list.iter().rposition(|&x| x == id) {
        Some(pos) => {
            list.remove(pos);
            true
        }
        None => false,
    };
    if order.held.get_mut(&thread).is_some_and(remove) {
        return;
    }
    for list in order.held.values_mut() {
        if remove(list) {
            return;
        }
    }
}

/// Resets the global tables in the child after `fork()`: only the forking thread survives, so
/// every recorded wait and every other thread's held-lock list is stale, and a table mutex held by
/// a thread that no longer exists is released.
pub fn after_fork_in_child(survivor: ThreadId) {
    if WAITS.is_locked() {
        // Safety: after fork() only the calling thread exists, and it does not hold the mutex
        // (it was running Python's os.fork), so the holder is gone for good.
        unsafe { WAITS.force_unlock() };
    }
    WAITS.lock().clear();
    if REGISTRY.is_locked() {
        // Safety: as above.
        unsafe { REGISTRY.force_unlock() };
    }
    if ORDER.is_locked() {
        // Safety: as above.
        unsafe { ORDER.force_unlock() };
    }
    ORDER.lock().held.retain(|t, _| *t == survivor);
}

/// Forgets everything about `thread` (it exited).
pub fn forget_thread(thread: ThreadId) {
    ORDER.lock().held.remove(&thread);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A resource with a settable holder list, for graph tests.
    pub struct Fake {
        pub id: u64,
        pub holders: Mutex<Vec<ThreadId>>,
    }

    impl Fake {
        pub fn shared(holders: &[ThreadId]) -> Arc<dyn Resource> {
            Arc::new(Fake {
                id: next_id(),
                holders: Mutex::new(holders.to_vec()),
            })
        }
    }

    impl Resource for Fake {
        fn id(&self) -> u64 {
            self.id
        }
        fn kind(&self) -> &'static str {
            "Fake"
        }
        fn name(&self) -> Option<&str> {
            None
        }
        fn holders(&self, out: &mut Vec<ThreadId>) {
            out.extend(self.holders.lock().iter().copied());
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    // Thread ids in these tests are made up (1_000_000 + n) so they never meet real threads.
    const T1: ThreadId = 1_000_001;
    const T2: ThreadId = 1_000_002;
    const T3: ThreadId = 1_000_003;

    #[test]
    fn two_thread_cycle_is_found_by_the_closer() {
        let a = Fake::shared(&[T1]);
        let b = Fake::shared(&[T2]);
        let (_g1, none) = begin_wait(T1, Arc::clone(&b), false);
        assert!(matches!(none, Verdict::Clear));
        let (_g2, found) = begin_wait(T2, Arc::clone(&a), false);
        let found = found.into_deadlock().expect("cycle");
        let threads: Vec<_> = found.edges.iter().map(|e| e.thread).collect();
        assert_eq!(threads, vec![T2, T1]);
        assert_eq!(found.edges[0].holders, vec![T1]);
    }

    #[test]
    fn self_wait_is_left_to_self_wait_stuck() {
        let a = Fake::shared(&[T3]);
        let (g, verdict) = begin_wait(T3, Arc::clone(&a), false);
        assert!(matches!(verdict, Verdict::SelfWait));
        let alone = self_wait_stuck(T3, &a, &[]).expect("no other thread: a deadlock");
        assert_eq!(alone.edges.len(), 1);
        assert_eq!(alone.edges[0].holders, vec![T3]);
        // Another thread that runs (is not recorded as waiting) may release it.
        assert!(self_wait_stuck(T3, &a, &[1_000_004]).is_none());
        drop(g);
        let (_g, verdict) = begin_wait(T3, Arc::clone(&a), true);
        assert!(matches!(verdict, Verdict::Clear), "a timed self-wait ends by itself");
    }

    #[test]
    fn self_wait_with_every_other_thread_stuck_behind_it() {
        let (me, other, third) = (1_000_051, 1_000_052, 1_000_053);
        let lock = Fake::shared(&[me]);
        let (_g1, _) = begin_wait(other, Arc::clone(&lock), false);
        let (_g2, verdict) = begin_wait(me, Arc::clone(&lock), false);
        assert!(matches!(verdict, Verdict::SelfWait));
        let found = self_wait_stuck(me, &lock, &[other]).expect("the only other thread waits for it");
        let threads: Vec<_> = found.edges.iter().map(|e| e.thread).collect();
        assert_eq!(threads, vec![me, other]);
        // A third thread waiting with a timeout will wake: it may release the lock then.
        let (_g3, _) = begin_wait(third, Arc::clone(&lock), true);
        assert!(self_wait_stuck(me, &lock, &[other, third]).is_none());
        // Once released, nothing is stuck.
        lock.as_any().downcast_ref::<Fake>().unwrap().holders.lock().clear();
        assert!(self_wait_stuck(me, &lock, &[other]).is_none());
    }

    #[test]
    fn timed_waiters_and_free_resources_break_cycles() {
        let a = Fake::shared(&[1_000_011]);
        let b = Fake::shared(&[1_000_012]);
        let (_g1, _) = begin_wait(1_000_011, Arc::clone(&b), true);
        let (_g2, found) = begin_wait(1_000_012, Arc::clone(&a), false);
        assert!(matches!(found, Verdict::Clear), "the other waiter times out eventually");
        let free = Fake::shared(&[]);
        let (_g3, found) = begin_wait(1_000_013, free, false);
        assert!(matches!(found, Verdict::Clear));
    }

    #[test]
    fn all_holders_must_be_stuck() {
        // A semaphore held by two threads: one is stuck behind the caller, the other runs.
        let sem = Fake::shared(&[1_000_021, 1_000_022]);
        let a = Fake::shared(&[1_000_023]);
        let (_g1, _) = begin_wait(1_000_021, Arc::clone(&a), false);
        let (g2, found) = begin_wait(1_000_023, Arc::clone(&sem), false);
        assert!(matches!(found, Verdict::Clear));
        let b = Fake::shared(&[1_000_023]);
        let (_g3, _) = begin_wait(1_000_022, b, false);
        // Re-check from the caller's side: now both holders wait on locks the caller holds.
        drop(g2);
        let (_g4, found) = begin_wait(1_000_023, sem, false);
        assert_eq!(found.into_deadlock().expect("knot").edges.len(), 3);
    }

    #[test]
    fn deadlocks_lists_each_cycle_once() {
        let (t1, t2, t3) = (1_000_061, 1_000_062, 1_000_063);
        let a = Fake::shared(&[t1]);
        let b = Fake::shared(&[t2]);
        let (_g1, _) = begin_wait(t1, Arc::clone(&b), false);
        let (_g2, _) = begin_wait(t2, Arc::clone(&a), false);
        // A third thread stuck behind the cycle is not part of it.
        let (_g3, _) = begin_wait(t3, Arc::clone(&a), false);
        let found: Vec<_> = deadlocks()
            .into_iter()
            .filter(|d| d.edges.iter().any(|e| e.thread == t1))
            .collect();
        assert_eq!(found.len(), 1);
        let threads: Vec<_> = found[0].edges.iter().map(|e| e.thread).collect();
        assert_eq!(threads, vec![t1, t2]);
        assert!(!deadlocks().iter().any(|d| d.edges.iter().any(|e| e.thread == t3)));
    }

    #[test]
    fn self_waits_lists_a_lock_waited_for_by_its_holder() {
        let t = 1_000_071;
        let a = Fake::shared(&[t]);
        let (_g, _) = begin_wait(t, Arc::clone(&a), false);
        assert!(self_waits().iter().any(|e| e.thread == t && e.waits_for.id() == a.id()));
    }

    #[test]
    fn guard_drop_unrecords_the_wait() {
        let a = Fake::shared(&[1_000_031]);
        {
            let (_g, _) = begin_wait(1_000_032, Arc::clone(&a), false);
            assert!(waits().iter().any(|(t, _)| *t == 1_000_032));
        }
        assert!(!waits().iter().any(|(t, _)| *t == 1_000_032));
    }

    #[test]
    fn lock_order_inversion_is_reported_once() {
        set_order_checking(true);
        let a = Fake::shared(&[]);
        let b = Fake::shared(&[]);
        let t = 1_000_041;
        assert!(order_acquired(t, a.as_ref()).is_empty());
        assert!(order_acquired(t, b.as_ref()).is_empty());
        order_released(t, b.id());
        order_released(t, a.id());
        assert!(order_acquired(t, b.as_ref()).is_empty());
        let inv = order_acquired(t, a.as_ref());
        assert_eq!(inv.len(), 1);
        assert_eq!(inv[0].held, b.label());
        assert_eq!(inv[0].earlier, vec![a.label(), b.label()]);
        order_released(t, a.id());
        order_released(t, b.id());
        order_acquired(t, b.as_ref());
        assert!(order_acquired(t, a.as_ref()).is_empty(), "reported once per pair");
        forget_thread(t);
    }
}
