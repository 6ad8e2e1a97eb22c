//! The dispatcher against real worker processes (a small Python script speaking the protocol).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::*;
use crate::supervise::{Child, Exit, Reaper, Spawn};

/// A worker speaking the protocol with raw frames: replies to a task with its body reversed,
/// exits with code 5 on `crash`, sleeps on `sleep`.
const WORKER: &str = r#"
import os, struct, sys, time
fd = int(sys.argv[-1])
def read_exact(n):
    b = b""
    while len(b) < n:
        c = os.read(fd, n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b
def send(kind, ident, payload):
    os.write(fd, struct.pack("<IB3xQ", len(payload), kind, ident) + payload)
while True:
    n, kind, ident = struct.unpack("<IB3xQ", read_exact(16))
    payload = read_exact(n)
    if kind == 1:
        send(16, 0, b"")
    elif kind == 3:
        body = payload[8:]
        if body == b"crash":
            os._exit(5)
        if body == b"sleep":
            time.sleep(30)
        send(17, ident, body[::-1])
    elif kind == 4:
        sys.exit(0)
"#;

type Outcomes = parking_lot::Mutex<Vec<(u32, Outcome)>>;

#[derive(Clone, Default)]
struct Collect(Arc<(Outcomes, parking_lot::Condvar)>);

impl Sink<u32> for Collect {
    fn start(&mut self, _ticket: &u32) -> bool {
        true
    }
    fn finish(&mut self, done: Vec<(u32, Outcome)>) {
        let (lock, cv) = &*self.0;
        lock.lock().extend(done);
        cv.notify_all();
    }
}

impl Collect {
    fn wait_for(&self, n: usize) -> Vec<(u32, Outcome)> {
        let (lock, cv) = &*self.0;
        let mut got = lock.lock();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < n {
            assert!(
                !cv.wait_until(&mut got, deadline).timed_out(),
                "outcomes did not arrive"
            );
        }
        let mut out = std::mem::take(&mut *got);
        out.sort_by_key(|(t, _)| *t);
        out
    }
}

fn pool(workers: usize, sink: Collect) -> Pool<u32> {
    let config = Config {
        workers,
        launch: None,
        reap: None,
        command: vec!["python3".into(), "-c".into(), WORKER.into()],
        hello: Vec::new(),
        hello_fds: Vec::new(),
        max_tasks_per_worker: None,
    };
    Pool::start(config, sink).unwrap()
}

fn def() -> Arc<Vec<u8>> {
    Arc::new(Vec::new())
}

#[test]
fn results_come_back_for_every_task() {
    let sink = Collect::default();
    let p = pool(2, sink.clone());
    for t in 0..50u32 {
        p.submit(1, Some(def()), format!("task{t}").into_bytes(), Vec::new(), None, t)
            .unwrap();
    }
    let got = sink.wait_for(50);
    for (t, outcome) in got {
        let want: Vec<u8> = format!("task{t}").into_bytes().into_iter().rev().collect();
        assert_eq!(outcome, Outcome::Ok(want, Vec::new()));
    }
    p.shutdown(false);
    p.join();
}

#[test]
fn worker_pids_follow_the_workers() {
    let sink = Collect::default();
    let p = pool(2, sink.clone());
    p.submit(1, Some(def()), b"ab".to_vec(), Vec::new(), None, 0).unwrap();
    p.submit(1, None, b"crash".to_vec(), Vec::new(), None, 1).unwrap();
    sink.wait_for(2);
    // Both slots hold a live worker (the crashed one replaced), each with its own pid.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pids = loop {
        let pids = p.worker_pids();
        if pids.iter().all(|&pid| pid > 0) {
            break pids;
        }
        assert!(Instant::now() < deadline, "slots not filled: {pids:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1]);
    p.shutdown(false);
    p.join();
    assert_eq!(p.worker_pids(), vec![0, 0], "every worker reaped");
}

#[test]
fn a_crash_fails_only_its_task() {
    let sink = Collect::default();
    let p = pool(1, sink.clone());
    p.submit(1, Some(def()), b"ab".to_vec(), Vec::new(), None, 0).unwrap();
    p.submit(1, None, b"crash".to_vec(), Vec::new(), None, 1).unwrap();
    p.submit(1, None, b"cd".to_vec(), Vec::new(), None, 2).unwrap();
    let got = sink.wait_for(3);
    assert_eq!(got[0].1, Outcome::Ok(b"ba".to_vec(), Vec::new()));
    assert_eq!(got[1].1, Outcome::Crashed(Exit::Code(5)));
    assert_eq!(
        got[2].1,
        Outcome::Ok(b"dc".to_vec(), Vec::new()),
        "runs on the replacement worker"
    );
    p.shutdown(false);
    p.join();
}

#[test]
fn a_timeout_kills_the_worker_and_the_pool_goes_on() {
    let sink = Collect::default();
    let p = pool(1, sink.clone());
    let t = Some(Duration::from_millis(200));
    p.submit(1, Some(def()), b"sleep".to_vec(), Vec::new(), t, 0).unwrap();
    // The next task's clock starts when it starts (on the replacement worker); its timeout is an
    // upper bound a loaded machine cannot reach, so only the first task can time out.
    let patient = Some(crate::testing::PATIENCE);
    p.submit(1, None, b"xy".to_vec(), Vec::new(), patient, 1).unwrap();
    let got = sink.wait_for(2);
    assert_eq!(got[0].1, Outcome::TimedOut(Duration::from_millis(200)));
    assert_eq!(got[1].1, Outcome::Ok(b"yx".to_vec(), Vec::new()));
    p.shutdown(false);
    p.join();
}

/// A pool whose workers are started by a stand-in fork server (this test, through `launch`)
/// that keeps them and reports their exits through `reap`.
fn pool_with_foreign_workers(workers: usize, sink: Collect) -> (Pool<u32>, Arc<Mutex<usize>>) {
    let server: Arc<Mutex<HashMap<i32, Child>>> = Arc::default();
    let reaped = Arc::new(Mutex::new(0));
    let started = Arc::clone(&server);
    let launch: Launch = Box::new(move |fd| {
        let child = Spawn::new("python3", ["-c", WORKER, &fd.to_string()])
            .keep_fd(fd)
            .spawn()?;
        let pid = child.pid();
        started.lock().insert(pid, child);
        Ok(Some(pid))
    });
    let count = Arc::clone(&reaped);
    let reap: Reaper = Arc::new(move |pid| {
        let mut child = server
            .lock()
            .remove(&pid)
            .ok_or_else(|| io::Error::other("unknown pid"))?;
        *count.lock() += 1;
        child.wait()
    });
    let config = Config {
        workers,
        launch: Some(launch),
        reap: Some(reap),
        command: Vec::new(),
        hello: Vec::new(),
        hello_fds: Vec::new(),
        max_tasks_per_worker: None,
    };
    (Pool::start(config, sink).unwrap(), reaped)
}

#[test]
fn foreign_workers_report_their_exit_through_the_reaper() {
    let sink = Collect::default();
    let (p, reaped) = pool_with_foreign_workers(1, sink.clone());
    let t = Some(Duration::from_millis(200));
    p.submit(1, Some(def()), b"ab".to_vec(), Vec::new(), None, 0).unwrap();
    p.submit(1, None, b"crash".to_vec(), Vec::new(), None, 1).unwrap();
    p.submit(1, None, b"sleep".to_vec(), Vec::new(), t, 2).unwrap();
    p.submit(1, None, b"cd".to_vec(), Vec::new(), None, 3).unwrap();
    let got = sink.wait_for(4);
    assert_eq!(got[0].1, Outcome::Ok(b"ba".to_vec(), Vec::new()));
    assert_eq!(
        got[1].1,
        Outcome::Crashed(Exit::Code(5)),
        "the status comes from the reaper"
    );
    assert_eq!(got[2].1, Outcome::TimedOut(Duration::from_millis(200)));
    assert_eq!(got[3].1, Outcome::Ok(b"dc".to_vec(), Vec::new()));
    p.shutdown(false);
    p.join();
    assert_eq!(*reaped.lock(), 3, "every worker, including the last one, was reaped");
}

#[test]
fn workers_a_launcher_declines_are_started_with_the_command() {
    // The binding's fork launcher declines once the interpreter is shutting down: `command`
    // starts those workers, and the work still queued runs on them.
    let calls = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&calls);
    let launch: Launch = Box::new(move |_fd| {
        *seen.lock() += 1;
        Ok(None)
    });
    let sink = Collect::default();
    let config = Config {
        workers: 2,
        launch: Some(launch),
        reap: None,
        command: vec!["python3".into(), "-c".into(), WORKER.into()],
        hello: Vec::new(),
        hello_fds: Vec::new(),
        max_tasks_per_worker: None,
    };
    let p = Pool::start(config, sink.clone()).unwrap();
    p.submit(1, Some(def()), b"ab".to_vec(), Vec::new(), None, 0).unwrap();
    p.submit(1, None, b"crash".to_vec(), Vec::new(), None, 1).unwrap();
    p.submit(1, None, b"cd".to_vec(), Vec::new(), None, 2).unwrap();
    let got = sink.wait_for(3);
    assert_eq!(got[0].1, Outcome::Ok(b"ba".to_vec(), Vec::new()));
    assert_eq!(got[1].1, Outcome::Crashed(Exit::Code(5)));
    assert_eq!(got[2].1, Outcome::Ok(b"dc".to_vec(), Vec::new()));
    p.shutdown(false);
    p.join();
    assert!(*calls.lock() >= 2, "the launcher was asked first, for each worker");
}

#[test]
fn shutdown_with_cancel_cancels_the_queue_and_submit_fails_after() {
    let sink = Collect::default();
    let p = pool(1, sink.clone());
    p.submit(
        1,
        Some(def()),
        b"sleep".to_vec(),
        Vec::new(),
        Some(Duration::from_millis(300)),
        0,
    )
    .unwrap();
    for t in 1..5 {
        p.submit(1, None, b"z".to_vec(), Vec::new(), None, t).unwrap();
    }
    p.shutdown(true);
    assert!(p.submit(1, None, b"late".to_vec(), Vec::new(), None, 99).is_err());
    p.join();
    let got = sink.wait_for(5);
    assert!(matches!(got[0].1, Outcome::TimedOut(_) | Outcome::Cancelled));
    assert!(got[1..].iter().all(|(_, o)| *o == Outcome::Cancelled));
}
