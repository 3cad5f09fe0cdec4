//! Request counters and search latencies, rendered in the Prometheus text format
//! (`GET /metrics`) and summarised as percentiles (`GET /api/v1/stats`).
//!
//! Memory is bounded: counters are keyed by (method, route template, status), all from
//! small fixed sets, and percentiles come from a ring of the most recent searches.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Upper bounds (seconds) of the search latency histogram buckets.
pub const LATENCY_BUCKETS_SECS: [f64; 14] = [
    0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Searches whose latencies the percentiles are computed over.
const RECENT_CAPACITY: usize = 4096;

/// Percentiles of recent search latencies, milliseconds; `None` (JSON `null`) before the
/// first search, when there is nothing to take a percentile of.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LatencySummary {
    /// Searches the summary covers (the most recent ones, at most 4096).
    pub window: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

/// Ring buffer of recent latencies (fixed capacity).
struct Recent {
    values: Vec<f64>,
    next: usize,
}

/// The server's counters.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    buckets: [AtomicU64; LATENCY_BUCKETS_SECS.len()],
    search_count: AtomicU64,
    search_sum_micros: AtomicU64,
    searches_found: AtomicU64,
    searches_not_found: AtomicU64,
    songs_added: AtomicU64,
    songs_removed: AtomicU64,
    recent: Mutex<Recent>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            search_count: AtomicU64::new(0),
            search_sum_micros: AtomicU64::new(0),
            searches_found: AtomicU64::new(0),
            searches_not_found: AtomicU64::new(0),
            songs_added: AtomicU64::new(0),
            songs_removed: AtomicU64::new(0),
            recent: Mutex::new(Recent {
                values: Vec::with_capacity(RECENT_CAPACITY),
                next: 0,
            }),
        }
    }

    /// Counts one answered request. `route` is the route template (e.g. `/api/v1/songs/{id}`)
    /// or `unmatched`, so the label set stays small.
    pub fn record_request(&self, method: &'static str, route: &str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (method, route.to_string(), status);
        *requests.entry(key).or_insert(0) += 1;
    }

    /// Records one successful search and how long the server took to answer it.
    pub fn record_search(&self, secs: f64, found: bool) {
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_SECS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.search_count.fetch_add(1, Ordering::Relaxed);
        self.search_sum_micros
            .fetch_add((secs * 1e6).round() as u64, Ordering::Relaxed);
        if found {
            self.searches_found.fetch_add(1, Ordering::Relaxed);
        } else {
            self.searches_not_found.fetch_add(1, Ordering::Relaxed);
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let ms = secs * 1000.0;
        if recent.values.len() < RECENT_CAPACITY {
            recent.values.push(ms);
        } else {
            let next = recent.next;
            recent.values[next] = ms;
        }
        recent.next = (recent.next + 1) % RECENT_CAPACITY;
    }

    /// Counts a song added through the API.
    pub fn record_added(&self) {
        self.songs_added.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a song removed through the API.
    pub fn record_removed(&self) {
        self.songs_removed.fetch_add(1, Ordering::Relaxed);
    }

    /// Searches answered (with or without a match).
    pub fn searches(&self) -> u64 {
        self.search_count.load(Ordering::Relaxed)
    }

    /// Percentiles of the recent search latencies.
    pub fn latency_summary(&self) -> LatencySummary {
        let mut values = {
            let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.values.clone()
        };
        if values.is_empty() {
            return LatencySummary::default();
        }
        values.sort_unstable_by(f64::total_cmp);
        let pick = |q: f64| {
            let rank = (q * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1]
        };
        LatencySummary {
            window: values.len(),
            p50_ms: Some(pick(0.50)),
            p90_ms: Some(pick(0.90)),
            p99_ms: Some(pick(0.99)),
            max_ms: values.last().copied(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4). `gauges` are appended as
    /// `(name, help, value)`.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP audiofp_http_requests_total HTTP requests answered, by method, route and status."
        );
        let _ = writeln!(out, "# TYPE audiofp_http_requests_total counter");
        {
            let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            for ((method, route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "audiofp_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape_label(route)
                );
            }
        }

        let _ = writeln!(
            out,
            "# HELP audiofp_search_duration_seconds Time to answer a successful search, from the request to the answer (upload, queueing, analysis, matching)."
        );
        let _ = writeln!(out, "# TYPE audiofp_search_duration_seconds histogram");
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_SECS) {
            let _ = writeln!(
                out,
                "audiofp_search_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.search_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "audiofp_search_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "audiofp_search_duration_seconds_sum {}",
            self.search_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "audiofp_search_duration_seconds_count {count}");

        let _ = writeln!(
            out,
            "# HELP audiofp_searches_total Successful searches, by whether a song matched."
        );
        let _ = writeln!(out, "# TYPE audiofp_searches_total counter");
        let _ = writeln!(
            out,
            "audiofp_searches_total{{result=\"match\"}} {}",
            self.searches_found.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "audiofp_searches_total{{result=\"no_match\"}} {}",
            self.searches_not_found.load(Ordering::Relaxed)
        );

        for (name, help, value) in [
            (
                "audiofp_songs_added_total",
                "Songs added through the API since the server started.",
                self.songs_added.load(Ordering::Relaxed),
            ),
            (
                "audiofp_songs_removed_total",
                "Songs removed through the API since the server started.",
                self.songs_removed.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Resident memory of this process, bytes (Linux; `None` elsewhere).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_percentiles_are_ranks() {
        let metrics = Metrics::new();
        for ms in 1..=100 {
            metrics.record_search(f64::from(ms) / 1000.0, ms % 2 == 0);
        }
        let text = metrics.render(&[("audiofp_songs_indexed", "Songs.", 3.0)]);
        assert!(text.contains("audiofp_search_duration_seconds_bucket{le=\"0.01\"} 10\n"));
        assert!(text.contains("audiofp_search_duration_seconds_bucket{le=\"+Inf\"} 100\n"));
        assert!(text.contains("audiofp_search_duration_seconds_count 100\n"));
        assert!(text.contains("audiofp_searches_total{result=\"match\"} 50\n"));
        assert!(text.contains("audiofp_songs_indexed 3\n"));
        let summary = metrics.latency_summary();
        assert_eq!(summary.window, 100);
        assert_eq!(summary.p50_ms, Some(50.0));
        assert_eq!(summary.p99_ms, Some(99.0));
        assert_eq!(summary.max_ms, Some(100.0));
    }

    #[test]
    fn recent_latencies_are_bounded() {
        let metrics = Metrics::new();
        for _ in 0..(RECENT_CAPACITY + 10) {
            metrics.record_search(0.001, true);
        }
        assert_eq!(metrics.latency_summary().window, RECENT_CAPACITY);
        assert_eq!(metrics.searches(), (RECENT_CAPACITY + 10) as u64);
    }
}
