//! Clock, latency histogram and `/proc` sampling (CPU% and RSS of the server and of
//! the generator itself), as in the Node generator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One process clock: epoch milliseconds with sub-ms precision (monotonic after start).
#[derive(Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_epoch_ms: f64,
}

impl Clock {
    pub fn new() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            origin: Instant::now(),
            origin_epoch_ms: epoch.as_secs_f64() * 1e3,
        }
    }
    pub fn now_ms(&self) -> f64 {
        self.origin_epoch_ms + self.origin.elapsed().as_secs_f64() * 1e3
    }
}

/// Log-linear histogram, ~1 % relative precision, 1 µs .. ~1 h (same as the Node tool's).
/// The buckets are allocated on the first sample: idle and rooms runs hold thousands
/// of clients that never record one.
#[derive(Clone, Default)]
pub struct Hist {
    b: Vec<u64>,
    n: u64,
    max: f64,
    sum: f64,
}

impl Hist {
    const BUCKETS: usize = 2400;
    pub fn new() -> Self {
        Hist::default()
    }
    pub fn add(&mut self, ms: f64) {
        let ms = if ms >= 0.0 { ms } else { 0.0 };
        let i = if ms < 0.001 {
            0
        } else {
            (1 + ((ms / 0.001).ln() / 1.01f64.ln()).floor() as usize).min(Self::BUCKETS - 1)
        };
        if self.b.is_empty() {
            self.b = vec![0; Self::BUCKETS];
        }
        self.b[i] += 1;
        self.n += 1;
        self.sum += ms;
        if ms > self.max {
            self.max = ms;
        }
    }
    pub fn merge(&mut self, other: &Hist) {
        if other.n == 0 {
            return;
        }
        if self.b.is_empty() {
            self.b = vec![0; Self::BUCKETS];
        }
        for (a, b) in self.b.iter_mut().zip(&other.b) {
            *a += b;
        }
        self.n += other.n;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
    pub fn q(&self, p: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let target = p * self.n as f64;
        let mut acc = 0u64;
        for (i, c) in self.b.iter().enumerate() {
            acc += c;
            if acc as f64 >= target {
                return Some(if i == 0 {
                    0.001
                } else {
                    self.max.min(0.001 * 1.01f64.powi(i as i32))
                });
            }
        }
        Some(self.max)
    }
    pub fn summary(&self) -> serde_json::Value {
        let r = |x: Option<f64>| x.map(|v| (v * 1000.0).round() / 1000.0);
        let has = self.n > 0;
        serde_json::json!({
            "n": self.n,
            "p50": r(self.q(0.5)),
            "p95": r(self.q(0.95)),
            "p99": r(self.q(0.99)),
            "max": r(has.then_some(self.max)),
            "mean": r(has.then(|| self.sum / self.n as f64)),
        })
    }
}

/// One reading of `/proc/<pid>/{stat,status}`.
#[derive(Clone, Copy)]
pub struct ProcSample {
    /// user + system.
    pub cpu_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub rss_kb: u64,
    pub threads: u64,
}

pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn proc_sample(pid: &str, tck: f64) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime (fields 14 and 15 of stat(5), counted from the pid)
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_s: (utime + stime) / tck,
        user_s: utime / tck,
        sys_s: stime / tck,
        rss_kb: field("VmRSS:"),
        threads: field("Threads:"),
    })
}

/// A sample of the server (`pid` 0: none).
pub fn server_sample(pid: u32) -> Option<ProcSample> {
    (pid != 0)
        .then(|| proc_sample(&pid.to_string(), clk_tck()))
        .flatten()
}

/// KiB → MiB with one decimal, as in the Node tool.
pub fn mb(kb: u64) -> f64 {
    (kb as f64 / 102.4).round() / 10.0
}

/// CPU% and RSS of this process and (optionally) the server over a measured span.
pub struct ProcMonitor {
    pid: u32,
    tck: f64,
    t0: Instant,
    self0: Option<ProcSample>,
    server0: Option<ProcSample>,
    peak_kb: Arc<AtomicU64>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

impl ProcMonitor {
    pub fn begin(pid: u32) -> Self {
        Self::begin_every(pid, Duration::from_millis(250))
    }

    /// Like `begin`, sampling the server's RSS for the peak every `every`
    /// (joinstorm: a peak that lasts a second).
    pub fn begin_every(pid: u32, every: Duration) -> Self {
        let tck = clk_tck();
        let server0 = (pid != 0)
            .then(|| proc_sample(&pid.to_string(), tck))
            .flatten();
        let peak_kb = Arc::new(AtomicU64::new(server0.map_or(0, |s| s.rss_kb)));
        let sampler = (pid != 0).then(|| {
            let peak = peak_kb.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if let Some(s) = proc_sample(&pid.to_string(), tck) {
                        peak.fetch_max(s.rss_kb, Ordering::Relaxed);
                    }
                }
            })
        });
        ProcMonitor {
            pid,
            tck,
            t0: Instant::now(),
            self0: proc_sample("self", tck),
            server0,
            peak_kb,
            sampler,
        }
    }

    pub fn end(self, out: &mut serde_json::Map<String, serde_json::Value>) {
        if let Some(s) = self.sampler {
            s.abort();
        }
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let pct = |a: f64, b: f64| ((b - a) / wall * 1000.0).round() / 10.0;
        if let (Some(a), Some(b)) = (self.self0, proc_sample("self", self.tck)) {
            out.insert("loadgen_cpu_pct".into(), pct(a.cpu_s, b.cpu_s).into());
            out.insert("loadgen_rss_mb".into(), (b.rss_kb / 1024).into());
        }
        if self.pid == 0 {
            return;
        }
        match (self.server0, proc_sample(&self.pid.to_string(), self.tck)) {
            (Some(a), Some(b)) => {
                let peak = self.peak_kb.load(Ordering::Relaxed).max(b.rss_kb);
                out.insert("server_cpu_pct".into(), pct(a.cpu_s, b.cpu_s).into());
                // Where the time goes: a server that writes to thousands of sockets
                // spends it in the kernel (system), one that encodes in user space.
                out.insert("server_user_cpu_pct".into(), pct(a.user_s, b.user_s).into());
                out.insert("server_sys_cpu_pct".into(), pct(a.sys_s, b.sys_s).into());
                out.insert("server_rss_mb_before".into(), mb(a.rss_kb).into());
                out.insert("server_rss_mb_after".into(), mb(b.rss_kb).into());
                out.insert("server_rss_mb_peak_sampled".into(), mb(peak).into());
                out.insert("server_threads".into(), b.threads.into());
            }
            _ => {
                out.insert(
                    "server_stats_error".into(),
                    format!("cannot read /proc/{}", self.pid).into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = Hist::new();
        assert_eq!(h.q(0.5), None);
        for i in 1..=100 {
            h.add(i as f64);
        }
        let p50 = h.q(0.5).unwrap();
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        assert_eq!(h.q(1.0).unwrap(), 100.0);
        let mut m = Hist::new();
        m.merge(&Hist::new());
        m.merge(&h);
        assert_eq!(m.q(1.0).unwrap(), 100.0);
    }
}
