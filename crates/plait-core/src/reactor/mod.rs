//! The event loop's reactor: readiness polling, timers, the ready queue and cross-thread wakeups.
//!
//! It knows nothing of Python or of transports. The binding's loop composes these pieces:
//!
//! - [`clock`]: `time.monotonic()`'s clock, in seconds as `f64` (what `loop.time()` returns).
//! - [`timers`]: a min-heap of deadlines, stable for equal deadlines (insertion order).
//! - [`ready`]: the queue of callbacks to run, swapped out whole once per tick.
//! - [`poller`]: a [`Selector`](poller::Selector) on `mio` (epoll) that the loop thread polls, the
//!   [`Registrar`](poller::Registrar) that maps each fd to its reader and writer, and a
//!   [`Waker`](poller::Waker) for other threads.
//!
//! `mio` registers sources edge-triggered; asyncio's `add_reader` is level-triggered. The
//! registrar bridges the two: an fd that fired is re-armed (`EPOLL_CTL_MOD`, which re-reports a
//! still-ready fd) after its callbacks ran, so a reader that did not drain its socket is called
//! again on the next tick, as with a level-triggered selector. Native transports, which read until
//! `EAGAIN`, can register with [`Registrar::set_edge`](poller::Registrar::set_edge) and skip the
//! re-arm. Another backend (`io_uring`) only has to provide the same `Selector`/`Registrar` surface.

pub mod clock;
pub mod poller;
pub mod ready;
pub mod timers;
