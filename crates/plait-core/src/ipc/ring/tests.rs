//! Tests of the shared-memory ring: order and limits, many producers and consumers, processes
//! killed before and after their commit, and corrupt headers.

use super::*;
use crate::block::Plain;
use crate::ipc::shm::Segment;
use std::sync::Arc;
use std::time::Duration;

fn reattach(r: &SharedRing) -> SharedRing {
    let fd = r.segment().fd().unwrap().try_clone().unwrap();
    Shared::attach(Arc::new(Segment::open(fd, false).unwrap())).unwrap()
}

fn put1(r: &SharedRing, tag: u32, data: &[u8]) -> usize {
    r.put(&[Message { tag, parts: &[data] }], &mut Plain, None, false)
        .unwrap()
}

fn get_all(r: &SharedRing, max: usize) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(t) = r
        .get(max, &mut Plain, None, false, |tag, a, b| {
            out.push((tag, [a, b].concat()));
        })
        .unwrap()
    {
        r.delivered(t);
    }
    out
}

#[test]
fn fifo_with_wrap_around_and_batches() {
    let r = create(4096, 0).unwrap();
    assert_eq!(r.capacity(), 4096);
    for round in 0..50u32 {
        let a = vec![round as u8; 1000 + round as usize];
        let b = vec![1u8; 3];
        let parts: [&[u8]; 2] = [&a, &b];
        let msgs = [
            Message {
                tag: round,
                parts: &parts,
            },
            Message { tag: 7, parts: &[b"x"] },
        ];
        assert_eq!(r.put(&msgs, &mut Plain, None, false).unwrap(), 2);
        assert_eq!(r.len(), 2);
        let got = get_all(&r, 10);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, round);
        assert_eq!(got[0].1, [a.as_slice(), b.as_slice()].concat());
        assert_eq!(got[1], (7, b"x".to_vec()));
        assert!(r.is_empty());
    }
}

#[test]
fn limits_too_large_full_and_maxsize() {
    let r = create(4096, 2).unwrap();
    let big = vec![0u8; 4096];
    assert!(matches!(
        r.put(
            &[Message { tag: 0, parts: &[&big] }],
            &mut Plain,
            crate::testing::patience(),
            true
        ),
        Err(IpcError::TooLarge {
            len: 4096,
            capacity: 4096
        })
    ));
    assert_eq!(put1(&r, 0, &big[..4088]), 1); // exactly fills the ring
    assert_eq!(put1(&r, 0, b""), 0);
    let soon = Some(Instant::now() + Duration::from_millis(5));
    assert_eq!(
        r.put(&[Message { tag: 0, parts: &[b"a"] }], &mut Plain, soon, true)
            .unwrap(),
        0
    );
    assert_eq!(get_all(&r, 1)[0].1.len(), 4088);
    assert_eq!(put1(&r, 1, b"a") + put1(&r, 2, b"b") + put1(&r, 3, b"c"), 2);
    assert!(r.is_full());
    assert_eq!(get_all(&r, 5).len(), 2);
    assert!(r.get(1, &mut Plain, soon, true, |_, _, _| {}).unwrap().is_none());
}

#[test]
fn many_producers_and_consumers_deliver_each_message_once() {
    let r = create(8192, 0).unwrap();
    let producers: Vec<_> = (0..3u32)
        .map(|p| {
            let r = reattach(&r);
            crate::testing::spawn(move || {
                for i in 0..5000u32 {
                    let v = (p << 24 | i).to_le_bytes();
                    let n = r
                        .put(
                            &[Message { tag: p, parts: &[&v] }],
                            &mut Plain,
                            crate::testing::patience(),
                            true,
                        )
                        .unwrap();
                    assert_eq!(n, 1);
                }
            })
        })
        .collect();
    // The consumers stop once every message is in (counted together), not after a quiet spell:
    // a producer descheduled for long on a loaded machine must not end the test early.
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let r = reattach(&r);
            let received = Arc::clone(&received);
            crate::testing::spawn(move || {
                let mut seen = Vec::new();
                let give_up = Instant::now() + crate::testing::PATIENCE;
                while received.load(Ordering::SeqCst) < 3 * 5000 {
                    assert!(
                        Instant::now() < give_up,
                        "messages missing after {:?}",
                        crate::testing::PATIENCE
                    );
                    // A short wait, then look at the count again: the other consumer may have
                    // taken the last messages.
                    let soon = Some(Instant::now() + Duration::from_millis(50));
                    let before = seen.len();
                    if let Some(t) = r
                        .get(7, &mut Plain, soon, true, |_, a, b| {
                            seen.push(u32::from_le_bytes([a, b].concat().try_into().unwrap()));
                        })
                        .unwrap()
                    {
                        r.delivered(t);
                        received.fetch_add(seen.len() - before, Ordering::SeqCst);
                    }
                }
                seen
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<u32> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    // FIFO per producer within each consumer is implied by the global order; check the set.
    all.sort_unstable();
    let mut want: Vec<u32> = (0..3u32).flat_map(|p| (0..5000).map(move |i| p << 24 | i)).collect();
    want.sort_unstable();
    assert_eq!(all, want);
    assert_eq!(r.lost(), 0);
}

/// As above, on one mapping shared by every thread, with messages of varied sizes that wrap
/// around a small ring: the thread sanitizer tracks memory by address, so only then does it check
/// that a consumer reads a record's bytes after the producer's commit, and a producer reuses
/// space after the consumer's. Every payload is checked byte for byte.
#[test]
fn producers_and_consumers_on_one_mapping_deliver_intact_messages_once() {
    const PRODUCERS: u32 = 2;
    const MESSAGES: u32 = 2000;
    fn payload(id: u32) -> Vec<u8> {
        let mut v = id.to_le_bytes().to_vec();
        v.extend((0..id % 301).map(|k| (id.wrapping_mul(31) ^ k) as u8));
        v
    }
    let r = Arc::new(create(4096, 0).unwrap());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let r = Arc::clone(&r);
            crate::testing::spawn(move || {
                for i in 0..MESSAGES {
                    let v = payload(p << 24 | i);
                    let m = [Message { tag: p, parts: &[&v] }];
                    assert_eq!(r.put(&m, &mut Plain, crate::testing::patience(), true).unwrap(), 1);
                }
            })
        })
        .collect();
    let received = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (r, received) = (Arc::clone(&r), Arc::clone(&received));
            crate::testing::spawn(move || {
                let mut seen = Vec::new();
                let give_up = Instant::now() + crate::testing::PATIENCE;
                while received.load(Ordering::SeqCst) < PRODUCERS * MESSAGES {
                    assert!(Instant::now() < give_up, "messages missing");
                    let soon = Some(Instant::now() + Duration::from_millis(50));
                    let mut batch = Vec::new();
                    if let Some(t) = r
                        .get(5, &mut Plain, soon, true, |tag, a, b| {
                            batch.push((tag, [a, b].concat()));
                        })
                        .unwrap()
                    {
                        r.delivered(t);
                        received.fetch_add(t.count as u32, Ordering::SeqCst);
                    }
                    for (tag, bytes) in batch {
                        let id = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                        assert_eq!(tag, id >> 24);
                        assert_eq!(bytes, payload(id), "message {id:#x} damaged");
                        seen.push(id);
                    }
                }
                seen
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<u32> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    all.sort_unstable();
    let want: Vec<u32> = (0..PRODUCERS)
        .flat_map(|p| (0..MESSAGES).map(move |i| p << 24 | i))
        .collect();
    assert_eq!(all, want);
    assert!(r.is_empty());
    assert_eq!(r.lost(), 0);
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Forges a lock held by a dead process (as if it was killed inside its critical section).
fn kill_holder(lock: &RobustLock, pid: u32) {
    // Safety: RobustLock starts with its futex word.
    let word = unsafe { &*std::ptr::from_ref(lock).cast::<AtomicU32>() };
    word.store(pid, Ordering::SeqCst);
}

#[test]
fn a_producer_killed_before_its_commit_leaves_no_trace() {
    let r = create(4096, 0).unwrap();
    put1(&r, 1, b"first");
    // The dead producer logged an intent and wrote half a record past tail, no commit.
    let p = &r.producers;
    p.log_pos.store(p.pos.load(Ordering::SeqCst) + 64, Ordering::SeqCst);
    p.log_count.store(2, Ordering::SeqCst);
    p.log_old.store(1, Ordering::SeqCst);
    p.log_active.store(1, Ordering::SeqCst);
    p.count.store(2, Ordering::SeqCst); // counted before the commit it never made
    kill_holder(&p.lock, dead_pid());
    assert_eq!(put1(&r, 2, b"second"), 1);
    let got = get_all(&r, 10);
    assert_eq!(got, vec![(1, b"first".to_vec()), (2, b"second".to_vec())]);
    assert_eq!(r.len(), 0);
    assert_eq!(
        r.unfinished(),
        2,
        "the uncommitted put was rolled back out of the count"
    );
}

#[test]
fn a_producer_killed_after_its_commit_is_rolled_forward() {
    let r = create(4096, 0).unwrap();
    put1(&r, 1, b"first");
    let p = &r.producers;
    // Committed (tail moved) but died before updating the count.
    let tail = p.pos.load(Ordering::SeqCst);
    p.count.store(0, Ordering::SeqCst);
    p.log_pos.store(tail, Ordering::SeqCst);
    p.log_count.store(1, Ordering::SeqCst);
    p.log_active.store(1, Ordering::SeqCst);
    kill_holder(&p.lock, dead_pid());
    assert_eq!(put1(&r, 2, b"second"), 1);
    assert_eq!(r.len(), 2);
    assert_eq!(get_all(&r, 10).len(), 2);
}

#[test]
fn a_consumer_killed_before_its_commit_loses_nothing() {
    let r = create(4096, 0).unwrap();
    put1(&r, 1, b"a");
    put1(&r, 2, b"b");
    let c = &r.consumers;
    let dead = dead_pid();
    c.log_pos.store(64, Ordering::SeqCst);
    c.log_slot.store(5, Ordering::SeqCst);
    c.log_active.store(1, Ordering::SeqCst);
    r.slots[5].store(u64::from(dead) << 32 | 1, Ordering::SeqCst);
    kill_holder(&c.lock, dead);
    assert_eq!(get_all(&r, 10).len(), 2);
    assert_eq!(r.reap(&mut Plain).unwrap(), 0);
}

#[test]
fn a_consumer_killed_after_taking_messages_is_reported() {
    let r = create(4096, 0).unwrap();
    for i in 0..3 {
        put1(&r, i, b"m");
    }
    // A get that committed and never called `delivered` (the process died): forge its slot.
    let t = r.get(2, &mut Plain, None, false, |_, _, _| {}).unwrap().unwrap();
    assert_eq!(t.count, 2);
    r.slots[t.slot as usize].store(u64::from(dead_pid()) << 32 | 2, Ordering::SeqCst);
    assert_eq!(r.reap(&mut Plain).unwrap(), 2);
    assert_eq!(r.reap(&mut Plain).unwrap(), 2);
    assert_eq!(get_all(&r, 10).len(), 1);
    assert_eq!(r.unfinished(), 1);
    r.task_done().unwrap();
    assert!(matches!(r.task_done(), Err(IpcError::TooManyTaskDone)));
    assert!(r.join(&mut Plain, None).unwrap());
}

fn is_corrupt<T: std::fmt::Debug>(r: Result<T, IpcError>) -> bool {
    matches!(r, Err(IpcError::Corrupt { object: "Queue", .. }))
}

fn try_get(r: &SharedRing) -> Result<Option<Taken>, IpcError> {
    r.get(8, &mut Plain, None, false, |_, _, _| {})
}

fn try_put(r: &SharedRing) -> Result<usize, IpcError> {
    r.put(&[Message { tag: 0, parts: &[b"x"] }], &mut Plain, None, false)
}

#[test]
fn a_corrupt_capacity_is_an_error_naming_the_queue() {
    let r = create(4096, 0).unwrap();
    put1(&r, 1, b"kept");
    let other = reattach(&r);
    for bad in [0, 3, 8, 4096 * 2, u64::MAX] {
        other.capacity.store(bad, Ordering::Relaxed);
        assert!(is_corrupt(try_put(&r)), "capacity {bad}");
        assert!(is_corrupt(try_get(&r)), "capacity {bad}");
        assert!(r.max_message() < usize::MAX);
    }
    let err = try_get(&r).unwrap_err().to_string();
    assert!(err.contains("Queue") && err.contains("capacity"), "{err}");
    other.capacity.store(4096, Ordering::Relaxed);
    assert_eq!(get_all(&r, 8), [(1, b"kept".to_vec())]);
}

#[test]
fn corrupt_positions_are_an_error_and_leave_the_ring_alone() {
    let r = create(4096, 0).unwrap();
    put1(&r, 1, b"kept");
    let tail = r.producers.pos.load(Ordering::Relaxed);
    for (head, tail) in [(tail + 8, tail), (0, 8192), (3, tail), (0, u64::MAX - 7)] {
        let saved = (
            r.consumers.pos.load(Ordering::Relaxed),
            r.producers.pos.load(Ordering::Relaxed),
        );
        r.consumers.pos.store(head, Ordering::Relaxed);
        r.producers.pos.store(tail, Ordering::Relaxed);
        assert!(is_corrupt(try_get(&r)), "head {head} tail {tail}");
        // A put that finds no room (the positions say the ring is over-full) does not look
        // further: it reports nothing put, as for a full ring.
        let put = try_put(&r);
        assert!(matches!(put, Ok(0)) || is_corrupt(put), "head {head} tail {tail}");
        assert!(!r.consumers.lock.is_locked() && !r.producers.lock.is_locked());
        r.consumers.pos.store(saved.0, Ordering::Relaxed);
        r.producers.pos.store(saved.1, Ordering::Relaxed);
    }
    r.task_done().unwrap();
    r.done.store(u64::MAX, Ordering::Relaxed);
    r.lost.store(u64::MAX, Ordering::Relaxed);
    assert_eq!(r.unfinished(), 0);
    assert!(matches!(r.task_done(), Err(IpcError::TooManyTaskDone)));
    assert_eq!(get_all(&r, 8), [(1, b"kept".to_vec())]);
}

#[test]
fn a_corrupt_record_header_is_an_error_and_nothing_is_taken() {
    let r = create(4096, 0).unwrap();
    put1(&r, 1, b"first");
    put1(&r, 2, b"second");
    let (base, _) = r.data();
    let second = record_len(b"first".len());
    // Safety: the second record's length word, 8-aligned inside the area.
    #[allow(clippy::cast_ptr_alignment, reason = "8-aligned offset of a page-aligned area")]
    unsafe {
        base.add(second).cast::<u32>().write(100_000);
    }
    let mut seen = 0;
    assert!(is_corrupt(r.get(8, &mut Plain, None, false, |_, _, _| seen += 1)));
    assert_eq!(seen, 1, "the record before the corrupt one was read, not taken");
    assert_eq!(r.len(), 2);
    assert!(!r.consumers.lock.is_locked());
    // Safety: as above.
    #[allow(clippy::cast_ptr_alignment, reason = "8-aligned offset of a page-aligned area")]
    unsafe {
        base.add(second).cast::<u32>().write(6);
    }
    assert_eq!(get_all(&r, 8), [(1, b"first".to_vec()), (2, b"second".to_vec())]);
}
