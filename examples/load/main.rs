//! The load client: the Rust successor of the seed's load script, and what the
//! HPA demo and the benchmarks drive slpocapp with. std only.
//!
//!     cargo run --release --example load -- [options] [http://]host:port[/path]
//!
//! Options:
//!   -c, --connections <n>   keep-alive connections, each on its own thread (default 8)
//!   -r, --rate <n>          total requests per second, 0 for as fast as possible (default 0)
//!   -d, --duration <secs>   how long to run, fractions allowed (default 10)
//!   -q, --quiet             no progress line each second
//!
//! Each connection reconnects when the server closes it. At a target rate, each
//! request is timed from when it was due to be sent, so a stalled server shows in
//! the latency instead of hiding (no coordinated omission). The summary gives the
//! achieved rate, p50/p90/p99/max latency, errors, and how many requests each
//! connection got answered, including the connections that got no answer at all
//! (which averages over all connections, as wrk reports, would hide).

mod http;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

struct Options {
    addr: SocketAddr,
    path: String,
    connections: usize,
    rate: f64,
    duration: Duration,
    quiet: bool,
}

const USAGE: &str =
    "usage: load [-c connections] [-r rate] [-d seconds] [-q] [http://]host:port[/path]";

fn parse() -> Result<Options, String> {
    let mut connections = 8;
    let mut rate = 0.0;
    let mut duration = 10.0;
    let mut quiet = false;
    let mut target = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-c" | "--connections" => {
                connections = value(&arg)?.parse().map_err(|_| "bad --connections")?;
            }
            "-r" | "--rate" => rate = value(&arg)?.parse().map_err(|_| "bad --rate")?,
            "-d" | "--duration" => duration = value(&arg)?.parse().map_err(|_| "bad --duration")?,
            "-q" | "--quiet" => quiet = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ if target.is_none() && !arg.starts_with('-') => target = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}; {USAGE}")),
        }
    }
    let target = target.ok_or(USAGE)?;
    let target = target.strip_prefix("http://").unwrap_or(&target);
    let (host, path) = match target.find('/') {
        Some(i) => (&target[..i], target[i..].to_owned()),
        None => (target, "/".to_owned()),
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or(format!("{host}: no address"))?;
    let valid = rate >= 0.0 && duration > 0.0 && duration < 1e6;
    if connections == 0 || !valid {
        return Err(format!(
            "connections must be > 0, rate >= 0, duration > 0; {USAGE}"
        ));
    }
    Ok(Options {
        addr,
        path,
        connections,
        rate,
        duration: Duration::from_secs_f64(duration),
        quiet,
    })
}

/// What one connection's thread brings back.
struct Tally {
    answered: u64,
    errors: u64,
    connects: u64,
    latencies_us: Vec<u32>,
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("load: {message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let deadline = started + options.duration;
    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let per_connection_rate = options.rate / options.connections as f64;

    let threads: Vec<_> = (0..options.connections)
        .map(|i| {
            let (answered, errors) = (Arc::clone(&answered), Arc::clone(&errors));
            let (addr, path) = (options.addr, options.path.clone());
            std::thread::spawn(move || {
                let mut client = http::Client::new(addr, Duration::from_secs(5));
                let mut tally = Tally {
                    answered: 0,
                    errors: 0,
                    connects: 0,
                    latencies_us: Vec::new(),
                };
                // Spread the connections' schedules over one interval.
                let interval = if per_connection_rate > 0.0 {
                    Some(Duration::from_secs_f64(1.0 / per_connection_rate))
                } else {
                    None
                };
                let mut due = started
                    + interval.map_or(Duration::ZERO, |iv| {
                        iv.mul_f64(i as f64 / options.connections as f64)
                    });
                loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    let sent = match interval {
                        Some(iv) => {
                            if due > now {
                                std::thread::sleep(due - now);
                            }
                            let at = due;
                            due += iv;
                            at
                        }
                        None => now,
                    };
                    match client.get(&path) {
                        Ok(response) if response.status < 500 => {
                            tally.answered += 1;
                            answered.fetch_add(1, Relaxed);
                            let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                            tally.latencies_us.push(us);
                        }
                        _ => {
                            tally.errors += 1;
                            errors.fetch_add(1, Relaxed);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                tally.connects = client.connects;
                tally
            })
        })
        .collect();

    if !options.quiet {
        let (answered, errors, done) = (
            Arc::clone(&answered),
            Arc::clone(&errors),
            Arc::clone(&done),
        );
        std::thread::spawn(move || {
            let mut last = 0;
            let mut second = 0;
            while !done.load(Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                second += 1;
                let now = answered.load(Relaxed);
                eprintln!(
                    "  {second:>4}s  {:>8} req/s  {:>6} errors",
                    now - last,
                    errors.load(Relaxed)
                );
                last = now;
            }
        });
    }

    let tallies: Vec<Tally> = threads.into_iter().filter_map(|t| t.join().ok()).collect();
    done.store(true, Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    let total: u64 = tallies.iter().map(|t| t.answered).sum();
    let total_errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let unanswered = tallies.iter().filter(|t| t.answered == 0).count();
    let per_connection: Vec<u64> = tallies.iter().map(|t| t.answered).collect();
    println!(
        "{} requests in {elapsed:.2} s over {} connections ({} TCP connects): {:.0} req/s",
        total,
        tallies.len(),
        tallies.iter().map(|t| t.connects).sum::<u64>(),
        total as f64 / elapsed
    );
    println!(
        "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        latencies
            .last()
            .map_or(f64::NAN, |&m| f64::from(m) / 1000.0)
    );
    println!(
        "errors: {total_errors}; answers per connection: min {} max {}; connections with no answer: {unanswered}",
        per_connection.iter().min().unwrap_or(&0),
        per_connection.iter().max().unwrap_or(&0),
    );
    if unanswered > 0 || total == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
