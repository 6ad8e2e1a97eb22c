//! [`echo_load`]: a native echo client for benchmarks, so the client is never the bottleneck
//! when an event loop's echo server is measured.
//!
//! One thread drives every connection through one `mio` poll: each connection sends a message,
//! reads the whole echo back, and sends the next, until the requested number of round trips is
//! done across all connections.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Conn {
    stream: TcpStream,
    /// Bytes of the current message sent and received back.
    sent: usize,
    received: usize,
    active: bool,
}

/// What an [`echo_load`] run measured.
#[derive(Debug, Clone, Copy)]
pub struct EchoStats {
    /// Round trips completed.
    pub round_trips: u64,
    /// Seconds from the first send to the last echo received.
    pub seconds: f64,
}

/// Opens `conns` TCP connections to `addr` and runs `round_trips` echoes of `size`-byte messages
/// over them, each connection keeping one message in flight.
///
/// # Errors
/// Connection failures, a peer that closes early, or `timeout` passing first (`TimedOut`).
pub fn echo_load(
    addr: SocketAddr,
    conns: usize,
    size: usize,
    round_trips: u64,
    timeout: Duration,
) -> io::Result<EchoStats> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(conns.max(16));
    let msg = vec![b'x'; size];
    let mut buf = vec![0u8; size.max(65536)];
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        all.push(Conn {
            stream,
            sent: 0,
            received: 0,
            active: true,
        });
    }
    let start = Instant::now();
    let deadline = start + timeout;
    let mut started = 0u64;
    let mut done = 0u64;
    // Every connection starts with one message in flight (or none, if fewer round trips).
    for c in &mut all {
        if started < round_trips {
            started += 1;
        } else {
            c.active = false;
        }
    }
    for c in &mut all {
        if c.active {
            pump_write(c, &msg)?;
        }
    }
    while done < round_trips {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                format!("echo_load: {done} of {round_trips} round trips"),
            ));
        }
        match poll.poll(&mut events, Some(deadline - now)) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in &events {
            let c = &mut all[ev.token().0];
            if !c.active {
                continue;
            }
            if ev.is_writable() {
                pump_write(c, &msg)?;
            }
            if ev.is_readable() || ev.is_read_closed() {
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "echo_load: server closed")),
                        Ok(n) => {
                            c.received += n;
                            if c.received >= size {
                                done += 1;
                                c.received -= size;
                                c.sent = 0;
                                if started < round_trips {
                                    started += 1;
                                    pump_write(c, &msg)?;
                                } else {
                                    c.active = false;
                                    break;
                                }
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(EchoStats {
        round_trips: done,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn pump_write(c: &mut Conn, msg: &[u8]) -> io::Result<()> {
    while c.sent < msg.len() {
        match c.stream.write(&msg[c.sent..]) {
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn drives_a_blocking_echo_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (mut s, _) = listener.accept().unwrap();
                    std::thread::spawn(move || {
                        let mut b = [0u8; 4096];
                        loop {
                            match s.read(&mut b) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => s.write_all(&b[..n]).unwrap(),
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        let stats = echo_load(addr, 2, 1000, 50, Duration::from_secs(30)).unwrap();
        assert_eq!(stats.round_trips, 50);
        server.join().unwrap();
    }
}
