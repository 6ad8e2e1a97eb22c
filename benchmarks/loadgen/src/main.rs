//! `plait-loadgen`: the native echo client that `benchmarks/aio.py` drives against each event
//! loop's echo server, so the client is never the bottleneck. It lives here, beside the benchmarks,
//! and not in the wheel.
//!
//! ```text
//! plait-loadgen HOST PORT CONNECTIONS SIZE ROUND_TRIPS [TIMEOUT_SECONDS]
//! ```
//!
//! On success it prints one line, `ROUND_TRIPS_DONE SECONDS` (seconds from the first send to the
//! last echo received; connecting is not timed), and exits 0. On an error it prints the error on
//! stderr and exits 1; bad arguments print the usage and exit 2.

mod loadgen;

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

const USAGE: &str = "usage: plait-loadgen HOST PORT CONNECTIONS SIZE ROUND_TRIPS [TIMEOUT_SECONDS (default 120)]";

/// The parsed command line.
struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    round_trips: u64,
    timeout: Duration,
}

fn field<T: FromStr>(args: &[String], i: usize, name: &str) -> Result<T, String> {
    let s = args.get(i).ok_or_else(|| format!("missing {name}"))?;
    s.parse().map_err(|_| format!("{name}: not a valid value: {s:?}"))
}

fn parse(args: &[String]) -> Result<Args, String> {
    if !(5..=6).contains(&args.len()) {
        return Err(format!("expected 5 or 6 arguments, got {}", args.len()));
    }
    let host = &args[0];
    let port: u16 = field(args, 1, "PORT")?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("HOST {host:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("HOST {host:?}: no address"))?;
    let conns: usize = field(args, 2, "CONNECTIONS")?;
    if conns == 0 {
        return Err("CONNECTIONS must be at least 1".into());
    }
    let timeout = if args.len() == 6 {
        let t: f64 = field(args, 5, "TIMEOUT_SECONDS")?;
        Duration::try_from_secs_f64(t).map_err(|e| format!("TIMEOUT_SECONDS {t}: {e}"))?
    } else {
        Duration::from_secs(120)
    };
    Ok(Args {
        addr,
        conns,
        size: field(args, 3, "SIZE")?,
        round_trips: field(args, 4, "ROUND_TRIPS")?,
        timeout,
    })
}

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&words) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("plait-loadgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match loadgen::echo_load(args.addr, args.conns, args.size, args.round_trips, args.timeout) {
        Ok(stats) => {
            let mut out = io::stdout().lock();
            if writeln!(out, "{} {}", stats.round_trips, stats.seconds).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plait-loadgen: {} ({}): {e}", args.addr, e.kind());
            ExitCode::FAILURE
        }
    }
}
