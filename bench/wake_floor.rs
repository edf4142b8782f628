//! What one wake-up costs native code on this machine, with nothing else in
//! the way: two threads exchange 16-byte messages over a Unix socket pair,
//! each blocked in `read` until the other writes (as the hub's thread waits in
//! `epoll_wait`). The Node.js twin (bench/wake_floor.js) measures the same for
//! two Node processes; `npm run bench:floor` runs both.
//!
//!   paced one-way: a message every 10 ms (the CPUs idle in between, as at
//!                  100 msg/s); latency from send to receive
//!   back to back:  round trips, each thread woken once per round trip; CPU
//!                  time of each thread per round trip
//!
//! The hub pays this per wake-up: a sequential `fetchSockets()` wakes it twice
//! (request in, answer in), and the stock adapter's primary as often.
//!
//! Run: `npm run bench:floor` (`cargo run --release --example wake_floor`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

const MESSAGE: usize = 16;
const PACED: usize = 300;
const PACE: Duration = Duration::from_millis(10);
const ROUNDS: usize = 20_000;

/// CPU time of the calling thread so far, in µs.
fn thread_cpu_us() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call;
    // CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return 0.0;
    }
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// One-way latencies (µs) of `PACED` messages sent `PACE` apart.
fn paced() -> std::io::Result<Vec<f64>> {
    let (mut tx, mut rx) = UnixStream::pair()?;
    let base = Instant::now();
    let receiver = thread::spawn(move || -> std::io::Result<Vec<f64>> {
        let mut buf = [0u8; MESSAGE];
        let mut lat = Vec::with_capacity(PACED);
        for _ in 0..PACED {
            rx.read_exact(&mut buf)?;
            let now = base.elapsed().as_nanos() as f64;
            let mut sent = [0u8; 8];
            sent.copy_from_slice(&buf[..8]);
            lat.push((now - f64::from_le_bytes(sent)) / 1e3);
        }
        Ok(lat)
    });
    let mut buf = [0u8; MESSAGE];
    for _ in 0..PACED {
        thread::sleep(PACE);
        let sent = base.elapsed().as_nanos() as f64;
        buf[..8].copy_from_slice(&sent.to_le_bytes());
        tx.write_all(&buf)?;
    }
    let mut lat = receiver
        .join()
        .map_err(|_| std::io::Error::other("receiver thread panicked"))??;
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

/// Round trips (µs, sorted) and the CPU time (µs) per round trip of each thread.
fn back_to_back() -> std::io::Result<(Vec<f64>, f64, f64)> {
    let (mut ping, mut pong) = UnixStream::pair()?;
    let echo = thread::spawn(move || -> std::io::Result<f64> {
        let mut buf = [0u8; MESSAGE];
        let cpu0 = thread_cpu_us();
        for _ in 0..ROUNDS {
            pong.read_exact(&mut buf)?;
            pong.write_all(&buf)?;
        }
        Ok((thread_cpu_us() - cpu0) / ROUNDS as f64)
    });
    let mut buf = [7u8; MESSAGE];
    let mut rtt = Vec::with_capacity(ROUNDS);
    let cpu0 = thread_cpu_us();
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        ping.write_all(&buf)?;
        ping.read_exact(&mut buf)?;
        rtt.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let ping_cpu = (thread_cpu_us() - cpu0) / ROUNDS as f64;
    let echo_cpu = echo
        .join()
        .map_err(|_| std::io::Error::other("echo thread panicked"))??;
    rtt.sort_by(f64::total_cmp);
    Ok((rtt, ping_cpu, echo_cpu))
}

fn main() -> std::io::Result<()> {
    // An unmeasured first round-trip run, so that the code and the allocator are warm.
    back_to_back()?;
    let lat = paced()?;
    let (rtt, ping_cpu, echo_cpu) = back_to_back()?;
    println!(
        "| native threads, Unix socket | messages | p50 (µs) | p90 (µs) | CPU per round trip, each thread (µs) |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| one-way, paced {} ms apart | {PACED} | {:.0} | {:.0} | |",
        PACE.as_millis(),
        quantile(&lat, 0.5),
        quantile(&lat, 0.9)
    );
    println!(
        "| round trip, back to back | {ROUNDS} | {:.0} | {:.0} | {ping_cpu:.1} / {echo_cpu:.1} |",
        quantile(&rtt, 0.5),
        quantile(&rtt, 0.9)
    );
    Ok(())
}
