//! `probe`: `/healthz` latency measured from a process of its own.
//!
//! A probe inside the load generator shares its runtime with thousands of
//! clients: a late answer could be the generator's delay as much as the server's.
//! [`HealthProbe::start`] runs this binary again as `chorus-bench probe`, which
//! asks every `every` with a fresh blocking TCP connection (no async runtime) and
//! prints one `milliseconds status` line per answer until its stdin closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The child's loop: sample until stdin reaches its end (the parent is done).
pub fn run(addr: SocketAddr, path: &str, every: Duration) -> anyhow::Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let mut out = std::io::stdout().lock();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = Instant::now();
        let status = get(addr, path).unwrap_or(0);
        writeln!(
            out,
            "{:.3} {status}",
            started.elapsed().as_secs_f64() * 1000.0
        )?;
        out.flush()?;
        std::thread::sleep(every);
    }
    Ok(())
}

/// One `GET`, its status (0: no answer within 10 s).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut status_line = String::new();
    BufReader::new(&stream).read_line(&mut status_line)?;
    Ok(status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// The parent's handle on a running probe process.
pub struct HealthProbe {
    child: Child,
}

impl HealthProbe {
    /// Start `chorus-bench probe` against `addr`.
    pub fn start(addr: SocketAddr, every: Duration) -> anyhow::Result<Self> {
        let child = Command::new(std::env::current_exe()?)
            .args(["probe", "--addr", &addr.to_string(), "--every-ms"])
            .arg(every.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        Ok(HealthProbe { child })
    }

    /// Stop it; every sample as (milliseconds, status).
    pub fn finish(mut self) -> anyhow::Result<Vec<(f64, u16)>> {
        drop(self.child.stdin.take());
        let mut text = String::new();
        self.child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut text)?;
        self.child.wait()?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let (ms, status) = l.split_once(' ')?;
                Some((ms.parse().ok()?, status.parse().ok()?))
            })
            .collect())
    }
}
