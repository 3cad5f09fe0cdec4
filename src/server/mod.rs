//! `audiofp serve`: the REST API over the same index as the CLI (axum + tokio).
//!
//! ```text
//! client -> CORS (if CORS_ORIGINS) -> body limit (MAX_CONTENT_LENGTH) + metrics -> handler
//!        handler: read the multipart upload (async)
//!              -> engine permit (semaphore, one per core) -> spawn_blocking:
//!                 decode + fingerprint (no lock) -> read lock: match -> JSON
//! ```
//!
//! State is one [`Library`] behind an `Arc<RwLock>`: searches share the read lock and run in
//! parallel; adding or deleting a song takes the write lock only for the store write and the
//! index update (an upload is decoded and fingerprinted before the lock is taken). Blocking
//! work never runs on the async worker threads. SIGINT/SIGTERM stop accepting connections
//! and let requests in flight finish. A connection idle for 30 s with no request being
//! handled is closed ([`connection`]); an upload that stalls for 30 s is answered 408.
//!
//! The endpoints are documented in `docs/API.md` and `docs/openapi.json` (served at
//! `/api/v1/openapi.json`).

pub mod connection;
pub mod error;
pub mod metrics;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::cli::{Cli, EXIT_OK, match_config};
use crate::config::{FingerprintConfig, MatchConfig};
use crate::index::OpenMode;
use crate::library::Library;
use error::ApiError;
use metrics::Metrics;

/// Default request body limit: 16 MiB.
pub const DEFAULT_MAX_CONTENT_LENGTH: u64 = 16 * 1024 * 1024;

/// How long requests in flight may take to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Only loopback by default: anything else exposes the API (which
    /// can add and delete songs, without authentication) to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Largest accepted request body: bytes, or with a K/M/G suffix (KB/MB/GB too, all
    /// binary multiples). Larger uploads get 413.
    #[arg(long, env = "MAX_CONTENT_LENGTH", default_value = "16MB", value_parser = parse_body_limit, value_name = "SIZE")]
    pub max_content_length: u64,
    /// Origins allowed to call the API from a browser, comma-separated (`*` for any).
    /// Without it no CORS headers are sent.
    #[arg(long, env = "CORS_ORIGINS", value_name = "ORIGINS")]
    pub cors_origins: Option<String>,
    /// Searches and uploads analysed at once [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub engine_threads: Option<usize>,
}

/// Smallest `MAX_CONTENT_LENGTH`: below it even a one-second clip could not be sent.
const MIN_BODY_LIMIT: u64 = 1 << 10;

/// Parses `MAX_CONTENT_LENGTH` as [`parse_size`] does, refusing a limit no upload could meet.
fn parse_body_limit(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if size < MIN_BODY_LIMIT {
        return Err(format!(
            "{size} bytes would refuse every upload; the smallest limit is 1K"
        ));
    }
    Ok(size)
}

/// Parses `16777216`, `16M`, `16MB`, `512K`, `1G` (binary multiples).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let digits_end = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (number, unit) = upper.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{trimmed:?} is not a size (e.g. 16777216, 512K, 16MB)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use K, M or G)")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{trimmed:?} is too large"))
}

/// Settings of a running server.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Largest accepted request body, bytes.
    pub max_content_length: u64,
    /// Origins allowed by CORS; empty = no CORS headers; `*` = any origin.
    pub cors_origins: Vec<String>,
    /// Searches and uploads analysed at once.
    pub engine_threads: usize,
    /// A connection with no byte in either direction for this long, while the server waits
    /// on it, is closed (stalled uploads, half-sent headers, idle keep-alives).
    pub idle_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_content_length: DEFAULT_MAX_CONTENT_LENGTH,
            cors_origins: Vec::new(),
            engine_threads: cores(),
            idle_timeout: connection::IDLE_TIMEOUT,
        }
    }
}

impl ServerSettings {
    /// Settings from the command line (and the environment behind it).
    pub fn from_args(args: &ServeArgs) -> Self {
        Self {
            max_content_length: args.max_content_length,
            cors_origins: args
                .cors_origins
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_string)
                .collect(),
            engine_threads: args.engine_threads.unwrap_or_else(cores).max(1),
            idle_timeout: connection::IDLE_TIMEOUT,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// What the handlers share.
pub(crate) struct Shared {
    pub(crate) library: Arc<RwLock<Library>>,
    /// Copies of the library's settings, so analysis needs no lock.
    pub(crate) fingerprint_config: FingerprintConfig,
    pub(crate) match_config: MatchConfig,
    /// One permit per concurrent analysis (search or upload).
    pub(crate) engine_permits: Arc<Semaphore>,
    pub(crate) metrics: Metrics,
    pub(crate) settings: ServerSettings,
    pub(crate) started: Instant,
}

/// The server's state: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    pub(crate) shared: Arc<Shared>,
}

impl AppState {
    /// Wraps an open library.
    pub fn new(mut library: Library, settings: ServerSettings) -> Self {
        let fingerprint_config = library.config().clone();
        let match_config = library.match_config().clone();
        // The library's own settings rank up to `MAX_TOP` matches (the shared-audio checks);
        // each search asks for the `top` of its request.
        library.set_match_config(MatchConfig {
            top_n: routes::MAX_TOP,
            ..match_config.clone()
        });
        Self {
            shared: Arc::new(Shared {
                library: Arc::new(RwLock::new(library)),
                fingerprint_config,
                match_config,
                engine_permits: Arc::new(Semaphore::new(settings.engine_threads.max(1))),
                metrics: Metrics::new(),
                settings,
                started: Instant::now(),
            }),
        }
    }

    /// The shared library (e.g. to flush it after the server stopped).
    pub fn library(&self) -> Arc<RwLock<Library>> {
        Arc::clone(&self.shared.library)
    }

    /// The server's settings.
    pub fn settings(&self) -> &ServerSettings {
        &self.shared.settings
    }
}

/// The API's routes with all their middleware.
pub fn router(state: AppState) -> Router {
    let limit = usize::try_from(state.shared.settings.max_content_length).unwrap_or(usize::MAX);
    let cors = cors_layer(&state.shared.settings.cors_origins);
    let router = Router::new()
        .route("/api/v1/search", post(routes::search))
        .route("/api/v1/tracklist", post(routes::tracklist))
        .route(
            "/api/v1/songs",
            get(routes::list_songs).post(routes::add_song),
        )
        .route(
            "/api/v1/songs/{id}",
            get(routes::get_song).delete(routes::delete_song),
        )
        .route("/api/v1/songs/{id}/shared-audio", get(routes::shared_audio))
        .route("/api/v1/stats", get(routes::stats))
        .route("/api/v1/health", get(routes::health))
        .route("/api/v1/openapi.json", get(routes::openapi))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit_and_count,
        ))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| match HeaderValue::from_str(origin) {
                Ok(value) => Some(value),
                Err(_) => {
                    tracing::warn!("CORS_ORIGINS: ignoring invalid origin {origin:?}");
                    None
                }
            })
            .collect();
        AllowOrigin::list(values)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE])
            .expose_headers([header::LOCATION])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Refuses bodies announced larger than the limit before reading them, and counts every
/// answer by route and status.
async fn limit_and_count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let limit = state.shared.settings.max_content_length;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The connection is not idle while its request is handled (see `connection`).
    let _in_flight = request
        .extensions()
        .get::<axum::extract::ConnectInfo<connection::ConnectionActivity>>()
        .map(|info| info.0.request());
    let response = match announced {
        Some(length) if length > limit => ApiError::TooLarge { limit }.into_response(),
        _ => next.run(request).await,
    };
    let status = response.status().as_u16();
    state.shared.metrics.record_request(method, &route, status);
    tracing::info!(
        "{method} {route} -> {status} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Serves the API on `listener` until `shutdown` completes, then lets requests in flight
/// finish (at most 30 s) and returns.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        stopping_tx.send(()).ok();
    };
    let listener = connection::IdleClosingListener::new(listener, state.settings().idle_timeout);
    let app = router(state).into_make_service_with_connect_info::<connection::ConnectionActivity>();
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(
                "requests still in flight {} s after the shutdown signal: stopping anyway",
                SHUTDOWN_GRACE.as_secs()
            );
            Ok(())
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    eprintln!("audiofp: shutting down (finishing requests in flight)");
    tracing::info!("shutdown signal received");
}

/// Runs `audiofp serve`.
pub fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<u8> {
    let settings = ServerSettings::from_args(args);
    // Serving an empty index is useful (songs can be uploaded), so one is created if needed.
    let library = cli.open_library(OpenMode::CreateIfMissing, &match_config()?)?;
    let location = library.store().location();
    let songs = library.inverted_index().song_count();
    let state = AppState::new(library, settings);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .thread_name("audiofp-server")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on({
        let state = state.clone();
        let host = args.host.clone();
        let port = args.port;
        async move {
            let listener = TcpListener::bind((host.as_str(), port))
                .await
                .with_context(|| format!("cannot listen on {host}:{port}"))?;
            let address: SocketAddr = listener.local_addr()?;
            if !address.ip().is_loopback() {
                tracing::warn!(
                    "listening on {address}: the API (which can add and delete songs) is reachable from the network"
                );
            }
            eprintln!(
                "audiofp: serving {songs} songs from {} on http://{address}/api/v1 (Ctrl-C to stop)",
                location.display()
            );
            serve_on(listener, state, shutdown_signal())
                .await
                .context("serving HTTP")
        }
    });
    // Whatever happened, leave the index compact on disk.
    let library = state.library();
    let mut library = library.write().unwrap_or_else(PoisonError::into_inner);
    if let Err(err) = library.store().flush() {
        tracing::warn!("flushing the index: {err}");
    }
    if let Err(err) = library.save_index_if_due() {
        tracing::warn!("saving the inverted index: {err}");
    }
    served?;
    Ok(EXIT_OK)
}
