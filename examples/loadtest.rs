//! Load test of `audiofp serve`: N concurrent clients send the same clip to
//! `POST /api/v1/search` until a number of requests (or a time limit) is reached, then the
//! throughput, latency percentiles, errors and the server's resident memory before, during
//! and after are reported. Loopback only.
//!
//! ```text
//! cargo build --release && cargo build --release --example loadtest
//! target/release/audiofp --db /tmp/srv.db serve --port 5000 &
//! target/release/examples/loadtest --url http://127.0.0.1:5000 --clients 8 \
//!     --requests 10000 --clip /var/tmp/audiofp-dev-corpus/queries/q00089_clean_10s.wav
//! ```
//!
//! The server's process is found from the port (the owner of the listening socket, via
//! `/proc`), or given with `--server-pid`; its memory is read from `/proc/<pid>/status`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use reqwest::Url;
use reqwest::multipart::{Form, Part};

/// Load-tests `POST /api/v1/search` of a local `audiofp serve`.
#[derive(Debug, Parser)]
#[command(name = "loadtest")]
struct Args {
    /// Base URL of the server (loopback only), e.g. http://127.0.0.1:5000.
    #[arg(long)]
    url: String,
    /// Concurrent clients (each sends one request at a time, over a kept-alive connection).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests to send in all (after the warm-up).
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Requests sent first and not counted (lets the server reach its steady state).
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// The clip to search for (any format the server decodes).
    #[arg(long)]
    clip: PathBuf,
    /// Stop sending after this many seconds even if not all requests were sent.
    #[arg(long, default_value_t = 1800)]
    max_secs: u64,
    /// The server's process id [default: the process listening on the URL's port].
    #[arg(long)]
    server_pid: Option<u32>,
    /// Ask for at most this many matches (`?top=N`) [default: the server's, 5]. With 1, a
    /// clip whose opening names a song conclusively is answered from it.
    #[arg(long)]
    top: Option<usize>,
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    errors: usize,
    no_match: usize,
    first_error: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = Url::parse(&args.url).context("--url is not a URL")?;
    check_loopback(&base)?;
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    let mut search = base.join("/api/v1/search")?;
    if let Some(top) = args.top {
        search.set_query(Some(&format!("top={top}")));
    }
    let clip: &'static [u8] = Box::leak(
        std::fs::read(&args.clip)
            .with_context(|| format!("reading {}", args.clip.display()))?
            .into_boxed_slice(),
    );
    let clip_name = args
        .clip
        .file_name()
        .map_or_else(|| "clip".to_string(), |n| n.to_string_lossy().to_string());
    let port = base.port_or_known_default().unwrap_or(80);
    let pid = args.server_pid.or_else(|| find_listener_pid(port));
    match pid {
        Some(pid) => println!("server pid {pid}"),
        None => println!("server process not found (pass --server-pid): no memory figures"),
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadtest")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients)
            .timeout(Duration::from_secs(120))
            .build()?;
        let rss_start = pid.and_then(rss_kib);

        // Warm-up (not counted).
        let warm = run_clients(
            &client,
            &search,
            clip,
            &clip_name,
            args.clients,
            args.warmup,
            Duration::from_secs(args.max_secs),
            None,
        )
        .await;
        if warm.errors > 0 {
            bail!(
                "{} errors during the warm-up, first: {}",
                warm.errors,
                warm.first_error.unwrap_or_default()
            );
        }
        let rss_warm = pid.and_then(rss_kib);

        println!(
            "{} clients, {} requests of {} ({} bytes) to {search}",
            args.clients,
            args.requests,
            args.clip.display(),
            clip.len()
        );
        let started = Instant::now();
        let tally = run_clients(
            &client,
            &search,
            clip,
            &clip_name,
            args.clients,
            args.requests,
            Duration::from_secs(args.max_secs),
            pid,
        )
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        let rss_end = pid.and_then(rss_kib);
        let hwm = pid.and_then(|p| status_kib(p, "VmHWM:"));

        let mut latencies = tally.latencies_ms.clone();
        latencies.sort_unstable_by(f64::total_cmp);
        let done = latencies.len() + tally.errors;
        println!("requests:    {done} in {elapsed:.1} s");
        println!("throughput:  {:.1} requests/s", done as f64 / elapsed);
        println!(
            "latency:     p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (end to end, client side)",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.90),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0)
        );
        println!(
            "errors:      {} (no match: {})",
            tally.errors, tally.no_match
        );
        if let Some(first) = &tally.first_error {
            println!("first error: {first}");
        }
        let mb = |kib: Option<u64>| kib.map_or("?".to_string(), |k| format!("{:.1} MB", k as f64 / 1024.0));
        println!(
            "server RSS:  {} at start, {} after the warm-up, {} after the run (peak {})",
            mb(rss_start),
            mb(rss_warm),
            mb(rss_end),
            mb(hwm)
        );
        if tally.errors > 0 {
            bail!("{} requests failed", tally.errors);
        }
        Ok(())
    })
}

/// Sends `total` requests from `clients` concurrent clients; prints the server's memory
/// every tenth of the run when `pid` is given.
#[allow(clippy::too_many_arguments)]
async fn run_clients(
    client: &reqwest::Client,
    url: &Url,
    clip: &'static [u8],
    clip_name: &str,
    clients: usize,
    total: usize,
    max_time: Duration,
    pid: Option<u32>,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + max_time;
    let step = (total / 10).max(1);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, url, next) = (client.clone(), url.clone(), Arc::clone(&next));
        let clip_name = clip_name.to_string();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() > deadline {
                    break;
                }
                if let Some(pid) = pid
                    && i > 0
                    && i % step == 0
                {
                    let rss = rss_kib(pid).map_or(0.0, |k| k as f64 / 1024.0);
                    println!("  {i:>6} requests sent, server RSS {rss:.1} MB");
                }
                let form =
                    Form::new().part("audio", Part::bytes(clip).file_name(clip_name.clone()));
                let sent = Instant::now();
                let outcome = async {
                    let response = client.post(url.clone()).multipart(form).send().await?;
                    let status = response.status();
                    let body = response.text().await?;
                    Ok::<_, reqwest::Error>((status, body))
                }
                .await;
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                match outcome {
                    Ok((status, body)) if status.is_success() => {
                        tally.latencies_ms.push(ms);
                        if !body.contains("\"found\":true") {
                            tally.no_match += 1;
                        }
                    }
                    Ok((status, body)) => {
                        tally.errors += 1;
                        tally
                            .first_error
                            .get_or_insert_with(|| format!("{status}: {body}"));
                    }
                    Err(err) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| err.to_string());
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => {
                all.latencies_ms.extend(tally.latencies_ms);
                all.errors += tally.errors;
                all.no_match += tally.no_match;
                if all.first_error.is_none() {
                    all.first_error = tally.first_error;
                }
            }
            Err(err) => {
                all.errors += 1;
                all.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    all
}

/// Refuses anything but loopback targets: this tool is not for loading other machines.
fn check_loopback(url: &Url) -> anyhow::Result<()> {
    if url.scheme() != "http" {
        bail!("only http:// URLs are supported");
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("refusing to load-test {host}: only loopback addresses (127.0.0.1, ::1, localhost)");
    }
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The process owning the socket listening on `port` (IPv4 or IPv6), via /proc.
fn find_listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT, st 0A is LISTEN, inode is field 9.
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && *state == "0A" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}
