//! plait's lock graph as the native channel thread sees it: every lock that is held or waited
//! for, its holders, every recorded wait, and the deadlocks among them. Read from the deadlock
//! detector's tables ([`deadlock::live_resources`], [`deadlock::waits`], [`deadlock::deadlocks`])
//! without the interpreter, so it is available when no Python code can run.
//!
//! Threads are known by ident only (`threading.get_ident()`): their names live in Python. The JSON
//! has the shape of the full report that `plait.dump(json=True)` builds, with `null` for what the
//! native side cannot see (stacks, names, asyncio tasks, greenlets, pools).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::json;
use crate::sync::deadlock::{self, Resource};
use crate::thread::ThreadId;

/// One lock (any waitable primitive) as reported.
#[derive(Debug, Clone)]
pub struct LockInfo {
    /// Its process-unique id.
    pub id: u64,
    /// `Lock 'db'` or `Lock #12`.
    pub label: String,
    /// `Lock`, `RLock`, `Semaphore`, ...
    pub kind: &'static str,
    /// The user-given name.
    pub name: Option<String>,
    /// Where it was last acquired (`file:line (in function)`), when known.
    pub site: Option<String>,
    /// The threads holding it.
    pub holders: Vec<ThreadId>,
}

/// One thread waiting for a lock.
#[derive(Debug, Clone)]
pub struct WaitInfo {
    /// The waiting thread.
    pub thread: ThreadId,
    /// The lock's id (in [`Graph::locks`]).
    pub lock: u64,
    /// Whether the wait has a timeout.
    pub timed: bool,
    /// How long it has waited, in seconds.
    pub seconds: f64,
}

/// One edge of a deadlock: `thread` waits for `lock`, held by `holders`.
#[derive(Debug, Clone)]
pub struct EdgeInfo {
    /// The waiting thread.
    pub thread: ThreadId,
    /// The lock's id (in [`Graph::locks`]).
    pub lock: u64,
    /// Its holders.
    pub holders: Vec<ThreadId>,
}

/// A deadlock found in the graph.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// A thread waiting for a lock it alone holds: a deadlock unless another thread releases it.
    pub self_wait: bool,
    /// The waits that make it up.
    pub edges: Vec<EdgeInfo>,
}

/// A snapshot of the lock graph.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Every lock that is held or waited for, by id.
    pub locks: BTreeMap<u64, LockInfo>,
    /// Every recorded wait, by thread.
    pub waits: Vec<WaitInfo>,
    /// The deadlocks among the waits.
    pub cycles: Vec<Cycle>,
}

/// The acquisition site of a resource, as the binding knows it (see [`server::Host::site`](super::server::Host::site)).
pub type SiteOf<'a> = &'a dyn Fn(&dyn Resource) -> Option<String>;

impl Graph {
    /// Reads the detector's tables now.
    #[must_use]
    pub fn snapshot(site: SiteOf<'_>) -> Self {
        let mut graph = Self::default();
        let mut holders = Vec::new();
        for res in deadlock::live_resources() {
            holders.clear();
            res.holders(&mut holders);
            if !holders.is_empty() {
                graph.add(res.as_ref(), site);
            }
        }
        for (thread, wait) in deadlock::waits() {
            let lock = graph.add(wait.resource.as_ref(), site);
            graph.waits.push(WaitInfo {
                thread,
                lock,
                timed: wait.timed,
                seconds: wait.since.elapsed().as_secs_f64(),
            });
        }
        graph.waits.sort_by_key(|w| w.thread);
        for found in deadlock::deadlocks() {
            let edges = found.edges.iter().map(|e| graph.edge(e, site)).collect();
            graph.cycles.push(Cycle {
                self_wait: false,
                edges,
            });
        }
        for e in deadlock::self_waits() {
            let edge = graph.edge(&e, site);
            graph.cycles.push(Cycle {
                self_wait: true,
                edges: vec![edge],
            });
        }
        graph
    }

    fn edge(&mut self, e: &deadlock::Edge, site: SiteOf<'_>) -> EdgeInfo {
        EdgeInfo {
            thread: e.thread,
            lock: self.add(e.waits_for.as_ref(), site),
            holders: e.holders.clone(),
        }
    }

    fn add(&mut self, res: &dyn Resource, site: SiteOf<'_>) -> u64 {
        let id = res.id();
        self.locks.entry(id).or_insert_with(|| {
            let mut holders = Vec::new();
            res.holders(&mut holders);
            holders.sort_unstable();
            holders.dedup();
            LockInfo {
                id,
                label: res.label(),
                kind: res.kind(),
                name: res.name().map(str::to_owned),
                site: site(res),
                holders,
            }
        });
        id
    }

    /// Every thread that holds or waits for a lock, sorted.
    #[must_use]
    pub fn threads(&self) -> Vec<ThreadId> {
        let mut threads: Vec<ThreadId> = self.locks.values().flat_map(|l| l.holders.iter().copied()).collect();
        threads.extend(self.waits.iter().map(|w| w.thread));
        threads.sort_unstable();
        threads.dedup();
        threads
    }

    fn label(&self, id: u64) -> &str {
        self.locks.get(&id).map_or("?", |l| l.label.as_str())
    }

    /// The report as text: `pid` is this process, `reason` why the interpreter's part is missing.
    #[must_use]
    pub fn text(&self, pid: u32, reason: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "plait dump of process {pid} (from plait's native channel thread)");
        let _ = writeln!(out, "Python stacks unavailable: {reason}.");
        out.push_str(
            "Shown: plait's locks with their holders, waiters and acquisition sites, threads by ident.\n\
             Not shown: stacks, thread names, asyncio tasks, greenlets, process pool workers.\n",
        );
        for cycle in &self.cycles {
            out.push('\n');
            self.cycle_text(&mut out, cycle);
        }
        let threads = self.threads();
        if threads.is_empty() {
            out.push_str("\nNo thread holds or waits for a plait lock.\n");
        }
        for thread in threads {
            let _ = writeln!(out, "\nThread {thread}");
            for lock in self.locks.values().filter(|l| l.holders.contains(&thread)) {
                let _ = write!(out, "  holds {}", lock.label);
                if let Some(site) = &lock.site {
                    let _ = write!(out, ", acquired at {site}");
                }
                out.push('\n');
            }
            for wait in self.waits.iter().filter(|w| w.thread == thread) {
                let kind = if wait.timed {
                    "with a timeout"
                } else {
                    "without timeout"
                };
                let _ = writeln!(
                    out,
                    "  waits for {} ({kind}, for {:.3}s)",
                    self.label(wait.lock),
                    wait.seconds
                );
            }
        }
        out
    }

    fn cycle_text(&self, out: &mut String, cycle: &Cycle) {
        if cycle.self_wait {
            let e = &cycle.edges[0];
            let _ = writeln!(
                out,
                "Possible deadlock: Thread {} waits for {}, which it holds itself (a deadlock unless \
                 another thread releases it).",
                e.thread,
                self.label(e.lock)
            );
            return;
        }
        let mut threads: Vec<ThreadId> = cycle.edges.iter().map(|e| e.thread).collect();
        threads.sort_unstable();
        threads.dedup();
        let n = threads.len();
        let _ = writeln!(
            out,
            "Found one deadlock ({n} thread{}):\n",
            if n == 1 { "" } else { "s" }
        );
        for e in &cycle.edges {
            let holders: Vec<String> = e.holders.iter().map(|h| format!("Thread {h}")).collect();
            let label = self.label(e.lock);
            let _ = writeln!(out, "  Thread {}", e.thread);
            let _ = writeln!(out, "    waits for {label}, held by {}", holders.join(", "));
            if let Some(site) = self.locks.get(&e.lock).and_then(|l| l.site.as_ref()) {
                let _ = writeln!(out, "    {label} was acquired at {site}");
            }
        }
    }

    /// The report as JSON, in the shape of the full report (see the module docs).
    #[must_use]
    pub fn json(&self, pid: u32, reason: &str) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"pid\": {pid}, \"source\": \"native\", \"python\": {{\"available\": false, \"reason\": "
        );
        json::string(&mut out, reason);
        out.push_str("}, \"threads\": [");
        for (i, thread) in self.threads().into_iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let holds: Vec<u64> = self
                .locks
                .values()
                .filter(|l| l.holders.contains(&thread))
                .map(|l| l.id)
                .collect();
            let _ = write!(
                out,
                "{{\"ident\": {thread}, \"name\": null, \"stack\": null, \"holds\": "
            );
            json::numbers(&mut out, &holds);
            out.push_str(", \"waits_for\": ");
            match self.waits.iter().find(|w| w.thread == thread) {
                Some(w) => {
                    let _ = write!(
                        out,
                        "{{\"lock\": {}, \"timed\": {}, \"seconds\": {:.3}}}",
                        w.lock, w.timed, w.seconds
                    );
                }
                None => out.push_str("null"),
            }
            out.push('}');
        }
        out.push_str("], \"locks\": [");
        for (i, lock) in self.locks.values().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{{\"id\": {}, \"kind\": ", lock.id);
            json::string(&mut out, lock.kind);
            out.push_str(", \"name\": ");
            json::opt_string(&mut out, lock.name.as_deref());
            out.push_str(", \"label\": ");
            json::string(&mut out, &lock.label);
            out.push_str(", \"holders\": ");
            json::numbers(&mut out, &lock.holders);
            out.push_str(", \"acquired_at\": ");
            json::opt_string(&mut out, lock.site.as_deref());
            out.push('}');
        }
        out.push_str("], \"deadlocks\": [");
        for (i, cycle) in self.cycles.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{{\"self_wait\": {}, \"edges\": [", cycle.self_wait);
            for (j, e) in cycle.edges.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                let _ = write!(
                    out,
                    "{{\"thread\": {}, \"waits_for\": {}, \"held_by\": ",
                    e.thread, e.lock
                );
                json::numbers(&mut out, &e.holders);
                out.push('}');
            }
            out.push_str("]}");
        }
        out.push_str("], \"asyncio\": null, \"greenlets\": null, \"process_pools\": null}\n");
        out
    }
}

/// A graph of one lock: for tests of the formats.
#[cfg(test)]
fn sample() -> Graph {
    let mut graph = Graph::default();
    for (id, holder) in [(1, 11), (2, 12)] {
        graph.locks.insert(
            id,
            LockInfo {
                id,
                label: format!("Lock 'l{id}'"),
                kind: "Lock",
                name: Some(format!("l{id}")),
                site: Some(format!("x.py:{id} (in f)")),
                holders: vec![holder],
            },
        );
    }
    graph.waits = vec![
        WaitInfo {
            thread: 11,
            lock: 2,
            timed: false,
            seconds: 1.5,
        },
        WaitInfo {
            thread: 12,
            lock: 1,
            timed: false,
            seconds: 1.0,
        },
    ];
    graph.cycles.push(Cycle {
        self_wait: false,
        edges: vec![
            EdgeInfo {
                thread: 11,
                lock: 2,
                holders: vec![12],
            },
            EdgeInfo {
                thread: 12,
                lock: 1,
                holders: vec![11],
            },
        ],
    });
    graph
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_threads_locks_sites_and_the_cycle() {
        let text = sample().text(7, "the interpreter did not respond");
        assert!(text.contains("Python stacks unavailable: the interpreter did not respond."));
        assert!(text.contains("Found one deadlock (2 threads):"));
        assert!(text.contains("    waits for Lock 'l2', held by Thread 12"));
        assert!(text.contains("    Lock 'l2' was acquired at x.py:2 (in f)"));
        assert!(text.contains("Thread 11\n  holds Lock 'l1', acquired at x.py:1 (in f)\n  waits for Lock 'l2'"));
    }

    #[test]
    fn json_has_the_report_shape() {
        let text = sample().json(7, "no \"answer\"");
        assert!(text.starts_with("{\"pid\": 7, \"source\": \"native\""));
        assert!(text.contains("\"reason\": \"no \\\"answer\\\"\""));
        assert!(text.contains("{\"ident\": 11, \"name\": null, \"stack\": null, \"holds\": [1], \"waits_for\": {\"lock\": 2, \"timed\": false, \"seconds\": 1.500}}"));
        assert!(text.contains("\"edges\": [{\"thread\": 11, \"waits_for\": 2, \"held_by\": [12]}"));
        assert!(text.trim_end().ends_with("\"process_pools\": null}"));
    }
}
