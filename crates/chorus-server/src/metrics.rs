//! Process-wide counters, rendered in the Prometheus text exposition format.
//!
//! The label sets are fixed and small (message kinds, close reasons), so the hot
//! path is one relaxed atomic add on a pre-allocated slot; no registry lookup, no
//! lock. Rare events (refusals, closes) go through a mutex-protected map.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use chorus_core::{Neutralised, Violation};
use chorus_docs::DocMetrics;

/// Message kinds, in the order of the counter slots.
const KINDS: [&str; 8] = [
    "sync_step1",
    "sync_step2",
    "sync_update",
    "awareness",
    "auth",
    "query_awareness",
    "chorus",
    "other",
];

fn kind_slot(kind: &str) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

#[derive(Default)]
struct PerKind {
    messages: [AtomicU64; 8],
    bytes: [AtomicU64; 8],
}

impl PerKind {
    fn add(&self, kind: &str, bytes: usize) {
        let i = kind_slot(kind);
        self.messages[i].fetch_add(1, Relaxed);
        self.bytes[i].fetch_add(bytes as u64, Relaxed);
    }
}

/// All counters and gauges of one server.
#[derive(Default)]
pub struct Metrics {
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    documents_loaded: AtomicI64,
    inbound: PerKind,
    outbound: PerKind,
    store_flushes: AtomicU64,
    store_jobs: AtomicU64,
    store_records: AtomicU64,
    store_flush_micros: AtomicU64,
    store_errors: AtomicU64,
    neutralised: [AtomicU64; 6],
    rejected_updates: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    closed: Mutex<BTreeMap<(u16, &'static str), u64>>,
}

impl Metrics {
    /// A websocket was accepted and authenticated.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// An authenticated websocket ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// Currently open authenticated connections.
    pub fn open_connections(&self) -> i64 {
        self.connections_open.load(Relaxed)
    }

    /// One message received.
    pub fn inbound(&self, kind: &str, bytes: usize) {
        self.inbound.add(kind, bytes);
    }

    /// One frame written to a socket.
    pub fn outbound(&self, kind: &str, bytes: usize) {
        self.outbound.add(kind, bytes);
    }

    /// A connection attempt refused before it joined a document.
    pub fn refused(&self, reason: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// A connection closed by the server with a code.
    pub fn closed(&self, code: u16, reason: &'static str) {
        *self
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((code, reason))
            .or_default() += 1;
    }

    /// Render in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        gauge(
            &mut out,
            "chorus_connections_open",
            "Open, authenticated websocket connections.",
            self.connections_open.load(Relaxed),
        );
        counter_head(
            &mut out,
            "chorus_connections_total",
            "Websocket connections accepted and authenticated since start.",
        );
        let _ = writeln!(
            out,
            "chorus_connections_total {}",
            self.connections_total.load(Relaxed)
        );
        counter_head(
            &mut out,
            "chorus_whitelist_neutralised_total",
            "Things outside the whitelist removed from incoming updates, by kind.",
        );
        for (i, kind) in Violation::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "chorus_whitelist_neutralised_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                self.neutralised[i].load(Relaxed)
            );
        }
        counter_head(
            &mut out,
            "chorus_whitelist_rejected_updates_total",
            "Updates refused as a whole (whitelist_mode = reject).",
        );
        let _ = writeln!(
            out,
            "chorus_whitelist_rejected_updates_total {}",
            self.rejected_updates.load(Relaxed)
        );
        gauge(
            &mut out,
            "chorus_documents_loaded",
            "Documents currently held in memory.",
            self.documents_loaded.load(Relaxed),
        );
        for (dir, per) in [("in", &self.inbound), ("out", &self.outbound)] {
            let name = format!("chorus_messages_{dir}_total");
            counter_head(
                &mut out,
                &name,
                &format!("Websocket messages {dir}, by type."),
            );
            for (i, kind) in KINDS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{type=\"{kind}\"}} {}",
                    per.messages[i].load(Relaxed)
                );
            }
            let name = format!("chorus_bytes_{dir}_total");
            counter_head(
                &mut out,
                &name,
                &format!("Websocket payload bytes {dir}, by type."),
            );
            for (i, kind) in KINDS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{type=\"{kind}\"}} {}",
                    per.bytes[i].load(Relaxed)
                );
            }
        }
        for (name, help, v) in [
            (
                "chorus_store_flushes_total",
                "Group commits (one fsync each).",
                &self.store_flushes,
            ),
            (
                "chorus_store_jobs_total",
                "Write jobs made durable, across all group commits.",
                &self.store_jobs,
            ),
            (
                "chorus_store_records_total",
                "Update log records written.",
                &self.store_records,
            ),
            (
                "chorus_store_write_seconds_total",
                "Time spent writing and flushing.",
                &self.store_flush_micros,
            ),
            (
                "chorus_store_errors_total",
                "Group commits that failed (nothing in them acknowledged).",
                &self.store_errors,
            ),
        ] {
            counter_head(&mut out, name, help);
            let value = v.load(Relaxed);
            if name == "chorus_store_write_seconds_total" {
                let _ = writeln!(out, "{name} {}", value as f64 / 1e6);
            } else {
                let _ = writeln!(out, "{name} {value}");
            }
        }
        counter_head(
            &mut out,
            "chorus_connections_refused_total",
            "Websocket connections refused before joining a document, by reason.",
        );
        for (reason, n) in self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "chorus_connections_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        counter_head(
            &mut out,
            "chorus_connections_closed_total",
            "Websocket connections closed by the server, by close code and reason.",
        );
        for ((code, reason), n) in self.closed.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "chorus_connections_closed_total{{code=\"{code}\",reason=\"{reason}\"}} {n}"
            );
        }
        out
    }
}

/// The document layer's events, counted here and rendered with the rest.
impl DocMetrics for Metrics {
    fn document_loaded(&self) {
        self.documents_loaded.fetch_add(1, Relaxed);
    }

    fn document_unloaded(&self) {
        self.documents_loaded.fetch_sub(1, Relaxed);
    }

    /// One group commit: `jobs` jobs with `records` log records, flushed in `took`.
    fn store_flush(&self, jobs: usize, records: usize, took: std::time::Duration) {
        self.store_flushes.fetch_add(1, Relaxed);
        self.store_jobs.fetch_add(jobs as u64, Relaxed);
        self.store_records.fetch_add(records as u64, Relaxed);
        self.store_flush_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// A store write or flush failed.
    fn store_error(&self) {
        self.store_errors.fetch_add(1, Relaxed);
    }

    /// What the whitelist guard neutralised in one document turn.
    fn whitelist(&self, neutralised: &Neutralised, rejected_updates: u64) {
        for (kind, n) in neutralised.iter() {
            let slot = Violation::ALL.iter().position(|k| *k == kind).unwrap_or(0);
            self.neutralised[slot].fetch_add(n, Relaxed);
        }
        if rejected_updates > 0 {
            self.rejected_updates.fetch_add(rejected_updates, Relaxed);
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn counter_head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.connection_opened();
        m.inbound("sync_update", 10);
        m.inbound("sync_update", 5);
        m.refused("token-expired");
        let text = m.render();
        assert!(text.contains("chorus_connections_open 1\n"));
        assert!(text.contains("chorus_messages_in_total{type=\"sync_update\"} 2\n"));
        assert!(text.contains("chorus_bytes_in_total{type=\"sync_update\"} 15\n"));
        assert!(text.contains("chorus_connections_refused_total{reason=\"token-expired\"} 1\n"));
    }
}
