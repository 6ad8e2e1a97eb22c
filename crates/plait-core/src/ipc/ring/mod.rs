//! A bounded multi-producer multi-consumer ring of variable-size messages in shared memory,
//! that survives producers and consumers killed in the middle of an operation.
//!
//! ## Layout
//! The ring's words (a [`Ring`], in a segment made by [`Shared::create`]) are followed by the
//! data area: `capacity` bytes, a power of two. Positions (`tail`, where producers write, and
//! `head`, where consumers read) are byte counts that only grow; `pos % capacity` is the
//! offset. A message is a record: an 8-byte header (payload length `u32`, a tag `u32` the
//! caller chooses, e.g. "pickle" or "raw bytes") and the payload, padded to 8 bytes. A payload
//! may wrap around the end of the area; a header never does.
//!
//! ## Concurrency
//! Producers serialise on one [`RobustLock`] and consumers on another (a two-lock queue), so a
//! producer copying a message in and a consumer copying one out run in parallel; only the
//! producers write `tail` and only the consumers write `head`. A side that finds the ring full
//! (or empty) sleeps on a futex word that the other side bumps when it sees sleepers (see
//! [`futex::wait_until`]), after a short spin.
//!
//! ## Commit points and crash safety
//! Each side changes the shared state with one store: a put *commits* when it stores the new
//! `tail` (with everything it wrote before it visible), a get when it stores the new `head`.
//! Before that store, the side writes an intent log (new position, new item count, the in-
//! flight slot) under its lock. When a process dies holding a side's lock, the next process to
//! take it (told [`Acquired::OwnerDied`] by the lock) repairs the side from the log: if the
//! position equals the logged one the operation committed and the item count is rolled forward,
//! otherwise nothing of it is visible (a half-written record beyond `tail` is free space; a
//! message half-read by a dead consumer is still in the ring and goes to the next consumer).
//!
//! A consumer that committed a get but died before its caller received the messages (while
//! decoding them, say) would lose them silently; so a get records `(pid, count)` in an
//! in-flight slot before committing, and the caller clears it (with [`Ring::delivered`]) once
//! it holds the objects. [`Ring::reap`] turns slots of dead processes into the `lost` count that
//! [`Ring::lost`] reports. A message is thus delivered exactly once to a live consumer, or
//! counted as lost: never duplicated, never silently dropped (up to the last instructions
//! between [`Ring::delivered`] and the caller's use of the object).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::block::Blocker;
use crate::error::IpcError;
use crate::ipc::futex::{notify, wait_until};
use crate::ipc::process;
use crate::ipc::robust::{Acquired, RobustLock};
use crate::ipc::shared::{Layout, Shared};

/// In-flight slots (concurrent gets between commit and delivery that are tracked).
pub const SLOTS: usize = 64;
/// Bytes of a record header.
pub const HEADER: usize = 8;
/// Smallest data area.
pub const MIN_CAPACITY: usize = 4096;
/// Largest data area (a record's length field is 32 bits).
pub const MAX_CAPACITY: usize = 1 << 31;
const NO_SLOT: u32 = u32::MAX;

/// One side (producers or consumers) of the ring, on its own cache lines.
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct Side {
    lock: RobustLock,
    /// `tail` for producers, `head` for consumers.
    pos: AtomicU64,
    /// Messages put (producers) or got (consumers), ever.
    count: AtomicU64,
    /// Intent log: non-zero while an operation is between its first write and its commit.
    log_active: AtomicU32,
    log_slot: AtomicU32,
    log_pos: AtomicU64,
    log_count: AtomicU64,
    /// The item count before the logged operation (producers store the new count before their
    /// commit, so a consumer that sees an item also counts it; recovery may roll it back).
    log_old: AtomicU64,
}

/// A futex word and its sleepers flag (see [`wait_until`]).
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct Wake {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

/// The ring's words; see the module docs.
#[repr(C)]
#[derive(Debug)]
pub struct Ring {
    capacity: AtomicU64,
    maxsize: AtomicU64,
    producers: Side,
    consumers: Side,
    /// Consumers sleep here waiting for data.
    data: Wake,
    /// Producers sleep here waiting for room.
    room: Wake,
    /// `join()` sleeps here.
    joined: Wake,
    /// `task_done()` calls, ever.
    done: AtomicU64,
    /// Messages lost with consumers that died after taking them.
    lost: AtomicU64,
    slots: [AtomicU64; SLOTS],
}

impl Layout for Ring {
    const KIND: u32 = 16;
    const NAME: &'static str = "Queue";
}

/// One message to put: a tag and its payload, given as parts that are concatenated.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Stored with the message, returned to the consumer.
    pub tag: u32,
    /// The payload, in pieces (written with one copy each).
    pub parts: &'a [&'a [u8]],
}

impl Message<'_> {
    fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }
}

/// What a get took: `count` messages, and the in-flight slot to clear with
/// [`Ring::delivered`] once they are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Messages handed to the sink.
    pub count: usize,
    slot: u32,
}

fn record_len(payload: usize) -> usize {
    (HEADER + payload).next_multiple_of(8)
}

/// A ring in a shared segment.
pub type SharedRing = Shared<Ring>;

/// Creates a ring with at least `capacity` bytes of data area (rounded up to a power of two,
/// between [`MIN_CAPACITY`] and [`MAX_CAPACITY`]) holding at most `maxsize` messages (0 = no
/// count limit).
///
/// # Errors
/// [`IpcError::Os`] when the segment cannot be created.
pub fn create(capacity: usize, maxsize: u64) -> Result<SharedRing, IpcError> {
    let capacity = capacity.clamp(MIN_CAPACITY, MAX_CAPACITY).next_power_of_two();
    Shared::<Ring>::create(capacity, |r| {
        r.capacity.store(capacity as u64, Ordering::Relaxed);
        r.maxsize.store(maxsize, Ordering::Relaxed);
    })
}

/// The data area of `ring`, checked against the recorded capacity (a word that any process
/// mapping the segment can overwrite).
fn area(ring: &SharedRing) -> Result<(*mut u8, usize), IpcError> {
    let (ptr, len) = ring.data();
    let cap = ring.capacity();
    if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) || !cap.is_power_of_two() || cap > len {
        return Err(corrupt(format!(
            "its header records a capacity of {cap} bytes for a data area of {len} bytes"
        )));
    }
    Ok((ptr, cap))
}

fn corrupt(detail: impl Into<String>) -> IpcError {
    IpcError::corrupt(Ring::NAME, detail)
}

/// Checks the positions read under a side's lock: `head <= tail <= head + cap`, both 8-aligned
/// (records start there), and far enough from overflow that adding a record cannot wrap.
fn check_positions(head: u64, tail: u64, cap: usize) -> Result<(), IpcError> {
    let cap = cap as u64;
    let sane = head <= tail && tail - head <= cap && head % 8 == 0 && tail % 8 == 0 && tail.checked_add(cap).is_some();
    if sane {
        Ok(())
    } else {
        Err(corrupt(format!(
            "its positions are inconsistent (read position {head}, write position {tail}, capacity {cap})"
        )))
    }
}

/// Releases a side's lock, which this process holds: if the word says otherwise, another
/// process wrote it.
fn unlock(lock: &RobustLock, side: &str) -> Result<(), IpcError> {
    lock.unlock()
        .map_err(|_| corrupt(format!("its {side} lock was found released while this process held it")))
}

impl Ring {
    /// Bytes in the data area.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed) as usize
    }

    /// The message-count limit (0 = none).
    #[must_use]
    pub fn maxsize(&self) -> u64 {
        self.maxsize.load(Ordering::Relaxed)
    }

    /// Largest payload a message may have.
    #[must_use]
    pub fn max_message(&self) -> usize {
        self.capacity().saturating_sub(HEADER)
    }

    /// Messages in the ring (approximate while others put or get).
    #[must_use]
    pub fn len(&self) -> u64 {
        let got = self.consumers.count.load(Ordering::Acquire);
        self.producers.count.load(Ordering::Acquire).saturating_sub(got)
    }

    /// Whether no message is committed and unread.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.consumers.pos.load(Ordering::SeqCst) == self.producers.pos.load(Ordering::SeqCst)
    }

    /// Whether the count limit is reached.
    #[must_use]
    pub fn is_full(&self) -> bool {
        let max = self.maxsize();
        max != 0 && self.len() >= max
    }

    fn has_room(&self, need: usize) -> bool {
        // Head first: the tail read after it is at least as new, so `used` cannot underflow
        // (and saturating keeps it so even across a ring repair).
        let head = self.consumers.pos.load(Ordering::SeqCst);
        let used = self.producers.pos.load(Ordering::SeqCst).saturating_sub(head);
        (self.capacity() as u64).saturating_sub(used) >= need as u64 && !self.is_full()
    }

    /// Messages lost with dead consumers, as last reaped (see [`Ring::reap`]).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::SeqCst)
    }

    /// Messages put but not yet marked done (`task_done`), less the lost ones.
    #[must_use]
    pub fn unfinished(&self) -> u64 {
        let settled = self.done.load(Ordering::SeqCst).saturating_add(self.lost());
        self.producers.count.load(Ordering::SeqCst).saturating_sub(settled)
    }

    /// Repairs the producer side after its lock was taken from a dead holder.
    fn recover_put(&self) {
        let p = &self.producers;
        if p.log_active.load(Ordering::Acquire) != 0 {
            let count = if p.pos.load(Ordering::Acquire) == p.log_pos.load(Ordering::Relaxed) {
                p.log_count.load(Ordering::Relaxed) // committed: counted
            } else {
                p.log_old.load(Ordering::Relaxed) // not committed: the count rolls back
            };
            p.count.store(count, Ordering::Release);
            p.log_active.store(0, Ordering::Release);
        }
    }

    /// Repairs the consumer side after its lock was taken from a dead holder; reaps.
    fn recover_get(&self) {
        let c = &self.consumers;
        if c.log_active.load(Ordering::Acquire) != 0 {
            if c.pos.load(Ordering::Acquire) == c.log_pos.load(Ordering::Relaxed) {
                c.count.store(c.log_count.load(Ordering::Relaxed), Ordering::Release);
            } else if let Some(slot) = self.slots.get(c.log_slot.load(Ordering::Relaxed) as usize) {
                // Not committed: the messages are still in the ring; they were never in flight.
                slot.store(0, Ordering::Release);
            }
            c.log_active.store(0, Ordering::Release);
        }
        self.reap_locked();
    }

    fn reap_locked(&self) {
        for slot in &self.slots {
            let v = slot.load(Ordering::Acquire);
            if v != 0 && !process::is_alive((v >> 32) as u32, 0) {
                self.lost.fetch_add(v & u64::from(u32::MAX), Ordering::SeqCst);
                slot.store(0, Ordering::Release);
            }
        }
        notify(&self.joined.seq, &self.joined.sleepers);
    }

    /// Marks the messages of `taken` as received by the caller (clears its in-flight slot).
    pub fn delivered(&self, taken: Taken) {
        if let Some(slot) = self.slots.get(taken.slot as usize) {
            slot.store(0, Ordering::Release);
        }
    }

    /// `task_done()`: one message processed.
    ///
    /// # Errors
    /// [`IpcError::TooManyTaskDone`] when every message put is already done.
    pub fn task_done(&self) -> Result<(), IpcError> {
        let put = &self.producers.count;
        self.done
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                (d.saturating_add(self.lost()) < put.load(Ordering::SeqCst)).then_some(d.wrapping_add(1))
            })
            .map_err(|_| IpcError::TooManyTaskDone)?;
        if self.unfinished() == 0 {
            notify(&self.joined.seq, &self.joined.sleepers);
        }
        Ok(())
    }
}

impl SharedRing {
    /// Puts `msgs` in order, waiting for room (until `deadline`, if `wait`). Returns how many
    /// were put: fewer than `msgs.len()` only when the wait ended (full ring, or no waiting).
    ///
    /// # Errors
    /// [`IpcError::TooLarge`] (before anything is put) for a message that could never fit;
    /// [`IpcError::Interrupted`]; [`IpcError::Corrupt`] when the ring's words in shared memory
    /// are inconsistent (another process wrote them).
    pub fn put<B: Blocker>(
        &self,
        msgs: &[Message<'_>],
        blocker: &mut B,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<usize, IpcError> {
        let (base, cap) = area(self)?;
        if let Some(m) = msgs.iter().find(|m| record_len(m.len()) > cap) {
            return Err(IpcError::TooLarge {
                len: m.len(),
                capacity: cap,
            });
        }
        let maxsize = self.maxsize();
        let p = &self.producers;
        let mut i = 0;
        while i < msgs.len() {
            let need = record_len(msgs[i].len());
            if !self.has_room(need)
                && (!wait
                    || !wait_until(blocker, deadline, &self.room.seq, &self.room.sleepers, || {
                        self.has_room(need)
                    })?)
            {
                return Ok(i);
            }
            match p.lock.lock(blocker, deadline)? {
                None => return Ok(i),
                Some(Acquired::OwnerDied) => self.recover_put(),
                Some(Acquired::Clean) => {}
            }
            let tail = p.pos.load(Ordering::Relaxed);
            let count = p.count.load(Ordering::Relaxed);
            let head = self.consumers.pos.load(Ordering::Acquire);
            let got = self.consumers.count.load(Ordering::Acquire);
            if let Err(e) = check_positions(head, tail, cap) {
                unlock(&p.lock, "producer")?;
                return Err(e);
            }
            let mut free = cap as u64 - (tail - head);
            let mut slots = if maxsize == 0 {
                u64::MAX
            } else {
                maxsize.saturating_sub(count.saturating_sub(got))
            };
            let start = i;
            let mut t = tail;
            while i < msgs.len() && slots > 0 {
                let m = &msgs[i];
                let rec = record_len(m.len()) as u64;
                if rec > free {
                    break;
                }
                // Safety: [t, t + rec) is free space (between tail and head + capacity), which
                // only this lock's holder writes and no consumer reads before the commit.
                unsafe { write_record(base, cap, t, m) };
                t += rec;
                free -= rec;
                slots -= 1;
                i += 1;
            }
            if i > start {
                p.log_pos.store(t, Ordering::Relaxed);
                p.log_count
                    .store(count.wrapping_add((i - start) as u64), Ordering::Relaxed);
                p.log_old.store(count, Ordering::Relaxed);
                p.log_active.store(1, Ordering::Release);
                // The count first: whoever sees the new items (after the commit) sees them
                // counted, so task_done/join never run ahead of it.
                p.count.store(count.wrapping_add((i - start) as u64), Ordering::SeqCst);
                p.pos.store(t, Ordering::SeqCst); // the commit point
                p.log_active.store(0, Ordering::Release);
            }
            unlock(&p.lock, "producer")?;
            if i > start {
                notify(&self.data.seq, &self.data.sleepers);
            }
        }
        Ok(i)
    }

    /// Takes up to `max` messages (at least one, waiting for it until `deadline` if `wait`),
    /// handing each to `sink(tag, payload_start, payload_rest)` (the payload is the
    /// concatenation; `payload_rest` is non-empty when it wraps). `sink` runs with the
    /// consumer lock held: it should copy and return. Returns `None` when nothing came.
    ///
    /// Call [`Ring::delivered`] with the result once the messages reached their receiver.
    ///
    /// # Errors
    /// [`IpcError::Interrupted`]; [`IpcError::Corrupt`] (with nothing taken) when the ring's
    /// words or a record header in shared memory are inconsistent. `sink` may have been called
    /// for messages before the corrupt one: they stay in the ring, so drop what it collected.
    pub fn get<B: Blocker>(
        &self,
        max: usize,
        blocker: &mut B,
        deadline: Option<Instant>,
        wait: bool,
        mut sink: impl FnMut(u32, &[u8], &[u8]),
    ) -> Result<Option<Taken>, IpcError> {
        let (base, cap) = area(self)?;
        let cons = &self.consumers;
        if max == 0 {
            return Ok(None);
        }
        loop {
            if self.is_empty()
                && (!wait
                    || !wait_until(blocker, deadline, &self.data.seq, &self.data.sleepers, || {
                        !self.is_empty()
                    })?)
            {
                return Ok(None);
            }
            match cons.lock.lock(blocker, deadline)? {
                None => return Ok(None),
                Some(Acquired::OwnerDied) => self.recover_get(),
                Some(Acquired::Clean) => {}
            }
            let head = cons.pos.load(Ordering::Relaxed);
            let got = cons.count.load(Ordering::Relaxed);
            let tail = self.producers.pos.load(Ordering::Acquire);
            if let Err(e) = check_positions(head, tail, cap) {
                unlock(&cons.lock, "consumer")?;
                return Err(e);
            }
            if head == tail {
                unlock(&cons.lock, "consumer")?;
                continue;
            }
            let mut at = head;
            let mut n = 0usize;
            while n < max && at != tail {
                // Safety: [at, tail) holds committed records that only this lock's holder reads
                // and no producer overwrites before `head` moves past them.
                let (tag, len) = unsafe { read_header(base, cap, at) };
                let rec = record_len(len) as u64;
                if rec > tail - at {
                    // Nothing was committed: the messages already handed to `sink` stay in the
                    // ring; the caller drops what it collected.
                    unlock(&cons.lock, "consumer")?;
                    return Err(corrupt(format!(
                        "a message header at position {at} announces {len} bytes, past the write \
                         position {tail}"
                    )));
                }
                // Safety: the record lies in [at, tail) (checked above), inside the area.
                let (a, b) = unsafe { payload(base, cap, at + HEADER as u64, len) };
                sink(tag, a, b);
                at += rec;
                n += 1;
            }
            let slot = self
                .slots
                .iter()
                .position(|s| s.load(Ordering::Relaxed) == 0)
                .map_or(NO_SLOT, |i| i as u32);
            cons.log_pos.store(at, Ordering::Relaxed);
            cons.log_count.store(got.wrapping_add(n as u64), Ordering::Relaxed);
            cons.log_slot.store(slot, Ordering::Relaxed);
            cons.log_active.store(1, Ordering::Release);
            if let Some(s) = self.slots.get(slot as usize) {
                s.store(
                    (u64::from(process::pid()) << 32) | (n as u64).min(u64::from(u32::MAX)),
                    Ordering::Release,
                );
            }
            cons.pos.store(at, Ordering::SeqCst); // the commit point
            cons.count.store(got.wrapping_add(n as u64), Ordering::Release);
            cons.log_active.store(0, Ordering::Release);
            unlock(&cons.lock, "consumer")?;
            notify(&self.room.seq, &self.room.sleepers);
            return Ok(Some(Taken { count: n, slot }));
        }
    }

    /// Counts the in-flight messages of dead consumers as lost; returns the total lost.
    ///
    /// # Errors
    /// [`IpcError::Interrupted`] while waiting for the consumer lock; [`IpcError::Corrupt`].
    pub fn reap<B: Blocker>(&self, blocker: &mut B) -> Result<u64, IpcError> {
        let c = &self.consumers;
        match c.lock.lock(blocker, None)? {
            None => {}
            Some(a) => {
                if a == Acquired::OwnerDied {
                    self.recover_get();
                } else {
                    self.reap_locked();
                }
                unlock(&c.lock, "consumer")?;
            }
        }
        Ok(self.lost())
    }

    /// Waits until every message put was marked done (or lost); `Ok(false)` at the deadline.
    ///
    /// # Errors
    /// [`IpcError::Interrupted`]; [`IpcError::Corrupt`].
    pub fn join<B: Blocker>(&self, blocker: &mut B, deadline: Option<Instant>) -> Result<bool, IpcError> {
        loop {
            // Every so often, look for consumers that died holding messages: those count as
            // done, and nobody else would notice them while everyone waits here.
            let step = Instant::now() + crate::ipc::robust::LIVENESS_CHECK * 4;
            let until = Some(deadline.map_or(step, |d| d.min(step)));
            if wait_until(blocker, until, &self.joined.seq, &self.joined.sleepers, || {
                self.unfinished() == 0
            })? {
                return Ok(true);
            }
            if crate::block::expired(deadline) {
                return Ok(false);
            }
            if let Some(a) = self.consumers.lock.try_lock() {
                if a == Acquired::OwnerDied {
                    self.recover_get();
                } else {
                    self.reap_locked();
                }
                unlock(&self.consumers.lock, "consumer")?;
            }
        }
    }
}

/// # Safety
/// `[pos, pos + record_len(m.len()))` (modulo `cap`) is free space of the area at `base`.
#[allow(
    clippy::cast_ptr_alignment,
    reason = "headers sit at 8-aligned offsets of a page-aligned area"
)]
unsafe fn write_record(base: *mut u8, cap: usize, pos: u64, m: &Message<'_>) {
    let off = (pos as usize) & (cap - 1);
    // `put` checked the record against `cap`, which `area` bounds by MAX_CAPACITY (2^31).
    let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
    // Safety: a header is 8-aligned and never wraps (cap and positions are multiples of 8).
    unsafe {
        base.add(off).cast::<u32>().write(len);
        base.add(off + 4).cast::<u32>().write(m.tag);
    }
    let mut at = (off + HEADER) & (cap - 1);
    for part in m.parts {
        let first = part.len().min(cap - at);
        // Safety: inside the area; the region is free (caller's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(part.as_ptr(), base.add(at), first);
            std::ptr::copy_nonoverlapping(part.as_ptr().add(first), base, part.len() - first);
        }
        at = (at + part.len()) & (cap - 1);
    }
}

/// # Safety
/// A committed record starts at `pos`.
#[allow(
    clippy::cast_ptr_alignment,
    reason = "headers sit at 8-aligned offsets of a page-aligned area"
)]
unsafe fn read_header(base: *mut u8, cap: usize, pos: u64) -> (u32, usize) {
    let off = (pos as usize) & (cap - 1);
    // Safety: per the contract; 8-aligned, inside the area.
    unsafe {
        let len = base.add(off).cast::<u32>().read();
        let tag = base.add(off + 4).cast::<u32>().read();
        (tag, (len as usize).min(cap - HEADER))
    }
}

/// # Safety
/// `len` committed payload bytes start at `pos`.
unsafe fn payload<'a>(base: *mut u8, cap: usize, pos: u64, len: usize) -> (&'a [u8], &'a [u8]) {
    let off = (pos as usize) & (cap - 1);
    let first = len.min(cap - off);
    // Safety: per the contract; both ranges are inside the area.
    unsafe {
        (
            std::slice::from_raw_parts(base.add(off), first),
            std::slice::from_raw_parts(base, len - first),
        )
    }
}

#[cfg(test)]
mod tests;
