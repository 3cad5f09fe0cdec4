//! The API's handlers. Anything that decodes audio or touches the index runs on tokio's
//! blocking pool; analysis also holds an engine permit, so at most one search or upload per
//! core is being analysed while further requests wait their turn.

use std::path::Path as FsPath;
use std::sync::{Arc, PoisonError, RwLockReadGuard};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::connection::ConnectionActivity;
use super::error::ApiError;
use super::metrics::{LatencySummary, resident_memory_bytes};
use super::{AppState, Shared};
use crate::cancel::CancelToken;
use crate::config::MatchConfig;
use crate::engine::{self, AudioSource, Side};
use crate::index::{NewSong, SongRecord};
use crate::library::{Library, Repeat, SongSharedAudio, TracklistEntryJson};

/// The OpenAPI document, kept in the repository as `docs/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// Default page size of `GET /api/v1/songs`.
pub const DEFAULT_PAGE: usize = 50;
/// Largest page size of `GET /api/v1/songs`.
pub const MAX_PAGE: usize = 1000;
/// Most matches a search may ask for.
pub const MAX_TOP: usize = crate::config::MAX_TOP_MATCHES;

/// Memory reserved for an upload before its bytes arrive (at most its announced length):
/// enough for a 45 s CD-quality WAV, so most clips land in one buffer.
const UPLOAD_RESERVE_BYTES: u64 = 8 << 20;
/// Longest title, artist or album accepted, in characters.
const MAX_TEXT_CHARS: usize = 1000;
/// The slowest an upload may be on average once it has run for
/// [`PACE_GRACE_IDLE_TIMEOUTS`] idle timeouts, bytes per second (32 kbit/s): below what a
/// phone on a poor mobile connection sends, far above a client that trickles a byte now and
/// then to hold the request open.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 4096;
/// How many idle timeouts an upload runs before its average rate is held to the minimum: more
/// than one, so that an upload that stops altogether is told it stalled, not that it is slow.
const PACE_GRACE_IDLE_TIMEOUTS: u32 = 2;

// ------------------------------------------------------------------------------------------
// Response bodies

/// A song.
#[derive(Clone, Debug, Serialize)]
pub struct SongJson {
    /// Song id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Length, seconds.
    pub duration_seconds: f64,
    /// When it was indexed, seconds since the Unix epoch.
    pub added_at: i64,
    /// Where the file was when indexed (`null` for uploads).
    pub path: Option<String>,
    /// BLAKE3 of the file's bytes (hex).
    pub content_hash: String,
    /// Spectral peaks stored.
    pub num_peaks: u32,
}

impl From<SongRecord> for SongJson {
    fn from(song: SongRecord) -> Self {
        Self {
            id: song.id,
            title: song.title,
            artist: song.artist,
            album: song.album,
            duration_seconds: song.duration_secs,
            added_at: song.added_at,
            path: song.path,
            content_hash: song.content_hash,
            num_peaks: song.num_peaks,
        }
    }
}

/// One match of a search.
#[derive(Clone, Debug, Serialize)]
pub struct MatchJson {
    /// Song id.
    pub song_id: i64,
    /// Title.
    pub title: String,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Calibrated confidence in [0, 1].
    pub confidence: f64,
    /// Where the clip starts in the song, seconds (for a song heard from inside the clip,
    /// its position at `clip_from_seconds`).
    pub offset_seconds: f64,
    /// Where in the clip the song is heard from: 0 unless the clip runs into it from another.
    pub clip_from_seconds: f64,
    /// Landmark hashes that agree on that offset.
    pub aligned_hashes: usize,
    /// Whether the song's own audio, read from its file, was compared with the clip (the
    /// best match, when its file is at hand as it was indexed): the confidence includes it.
    pub source_checked: bool,
    /// Length of the song, seconds.
    pub duration_seconds: f64,
    /// Other places in the song where the clip fits nearly as well (a loop, a chorus, a
    /// repeated bar), in time order; empty for a passage the song plays once.
    pub repeats: Vec<Repeat>,
}

/// The answer to `POST /api/v1/search`.
#[derive(Clone, Debug, Serialize)]
pub struct SearchResponse {
    /// Matches, best first; empty when nothing matched.
    pub matches: Vec<MatchJson>,
    /// Analysis plus matching time, milliseconds.
    pub processing_time_ms: f64,
    /// Whether anything matched.
    pub found: bool,
    /// Length of the clip, seconds.
    pub clip_seconds: f64,
    /// Landmark hashes of the clip that were looked up.
    pub query_hashes: usize,
    /// The speed the clip was found at: 1.02 when it plays 2 % fast (found by the speed
    /// search), 1 otherwise.
    pub speed: f64,
    /// The pitch shift the clip was found at, in semitones: ±1 when the pitch search found it
    /// a semitone off, 0 otherwise.
    pub pitch_semitones: f64,
}

/// A page of songs.
#[derive(Clone, Debug, Serialize)]
pub struct SongPage {
    /// The songs of this page, by id.
    pub items: Vec<SongJson>,
    /// Songs matching the filter, all pages.
    pub total: usize,
    /// Page size used.
    pub limit: usize,
    /// Songs skipped.
    pub offset: usize,
}

/// `GET /api/v1/stats`.
#[derive(Clone, Debug, Serialize)]
pub struct StatsJson {
    /// Songs indexed.
    pub songs: u64,
    /// Hours of audio indexed.
    pub hours: f64,
    /// Spectral peaks stored.
    pub peaks: u64,
    /// Landmark hashes in the search index.
    pub hashes: usize,
    /// Bytes of the in-memory search index.
    pub memory_index_bytes: usize,
    /// Bytes of the index on disk (database + WAL; 0 for `STORAGE_TYPE=memory`).
    pub bytes_on_disk: u64,
    /// `sqlite` or `memory`.
    pub storage: &'static str,
    /// Searches answered since the server started.
    pub queries_served: u64,
    /// Percentiles of recent search latencies (server side, upload to answer).
    pub search_latency: LatencySummary,
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Resident memory of the server process, bytes (Linux).
    pub resident_memory_bytes: Option<u64>,
}

/// `GET /api/v1/health`.
/// Response of `POST /api/v1/tracklist`.
#[derive(Clone, Debug, Serialize)]
pub struct TracklistJson {
    /// Length of the recording, seconds.
    pub recording_seconds: f64,
    /// Songs heard, in the order they start.
    pub songs: Vec<TracklistEntryJson>,
    /// Windows identified, and those with nothing to identify.
    pub windows: usize,
    pub silent_windows: usize,
    /// Server-side time, ms.
    pub processing_time_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HealthJson {
    /// Always `ok` when the server answers.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Songs indexed.
    pub songs: usize,
    /// Seconds since the server started.
    pub uptime_seconds: f64,
}

// ------------------------------------------------------------------------------------------
// Query strings

/// Query of `POST /api/v1/search`.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    /// Report at most this many matches (1..=50) [default: `MatchConfig::top_n`].
    pub top: Option<usize>,
}

/// Query of `GET /api/v1/songs`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// Page size (at most 1000) [default 50].
    pub limit: Option<usize>,
    /// Songs to skip [default 0].
    pub offset: Option<usize>,
    /// Case-insensitive text that the title, artist or album must contain.
    pub q: Option<String>,
}

// ------------------------------------------------------------------------------------------
// Helpers

/// The parts of a multipart upload the API knows.
#[derive(Default)]
struct UploadForm {
    /// Bytes and (sanitised) file name of field `audio`.
    audio: Option<(Vec<u8>, String)>,
    title: Option<String>,
    artist: Option<String>,
    album: Option<String>,
}

/// Reads an upload's form with the server's limits (body size, idle time).
async fn read_upload(
    state: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
    connection: Option<Extension<ConnectInfo<ConnectionActivity>>>,
    headers: &HeaderMap,
) -> Result<UploadForm, ApiError> {
    let settings = &state.shared.settings;
    read_form(
        multipart,
        connection.map(|Extension(ConnectInfo(connection))| connection),
        headers,
        settings.max_content_length,
        settings.idle_timeout,
    )
    .await
}

/// Reads the form. `headers` give the announced body length, so the audio is received into
/// one buffer of the right size instead of a chain of growing ones (less allocator churn).
/// A body that is not a form is refused naming the content type that was sent.
async fn read_form(
    multipart: Result<Multipart, MultipartRejection>,
    connection: Option<ConnectionActivity>,
    headers: &HeaderMap,
    limit: u64,
    idle: Duration,
) -> Result<UploadForm, ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("(not text)"));
        let is_form = content_type.is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
        if is_form {
            // A form whose header is broken (no boundary, say).
            ApiError::BadRequest {
                code: "invalid_multipart",
                message: format!(
                    "malformed multipart/form-data body: {}",
                    rejection.body_text()
                ),
            }
        } else {
            ApiError::NotAForm {
                sent: content_type
                    .map(|t| format!("Content-Type {t:?}"))
                    .unwrap_or_else(|| "no Content-Type".to_string()),
            }
        }
    })?;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(limit);
    let mut form = UploadForm::default();
    let mut pace = UploadPace::new(connection, idle);
    while let Some(mut field) = body_part(multipart.next_field(), &pace, limit).await? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "audio" => {
                let file_name = upload_name(field.file_name());
                // Reserved up to what a typical clip needs: a client could announce the limit
                // and send nothing.
                let reserve = announced.min(UPLOAD_RESERVE_BYTES);
                let mut bytes = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
                while let Some(chunk) = body_part(field.chunk(), &pace, limit).await? {
                    pace.part_read(chunk.len());
                    bytes.extend_from_slice(&chunk);
                }
                if form.audio.is_none() {
                    form.audio = Some((bytes, file_name));
                }
            }
            "title" | "artist" | "album" => {
                let text = body_part(field.text(), &pace, limit).await?;
                pace.part_read(text.len());
                let text = text.trim();
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Err(ApiError::BadRequest {
                        code: "invalid_field",
                        message: format!(
                            "field `{name}` is longer than {MAX_TEXT_CHARS} characters"
                        ),
                    });
                }
                let value = (!text.is_empty()).then(|| text.to_string());
                match name.as_str() {
                    "title" => form.title = value,
                    "artist" => form.artist = value,
                    _ => form.album = value,
                }
            }
            _ => {
                // Unknown fields are read (they count towards the limit) and ignored.
                while let Some(chunk) = body_part(field.chunk(), &pace, limit).await? {
                    pace.part_read(chunk.len());
                }
            }
        }
    }
    Ok(form)
}

/// Holds an upload to a pace: it is answered "stalled" once nothing of it has arrived for the
/// idle timeout, and "too slow" once, having run for [`PACE_GRACE_IDLE_TIMEOUTS`] idle
/// timeouts, it averages under [`MIN_UPLOAD_BYTES_PER_SEC`]. Progress is read from the
/// connection, byte by byte, since a single read of the form (a part's headers) may wait for
/// many bytes. The connection's own idle clock is stopped while its request is handled.
struct UploadPace {
    connection: Option<ConnectionActivity>,
    started: Instant,
    bytes_before: u64,
    /// Progress counted from the parts read, for a connection that is not tracked.
    parts_bytes: u64,
    last_part: Instant,
    idle: Duration,
}

impl UploadPace {
    fn new(connection: Option<ConnectionActivity>, idle: Duration) -> Self {
        let now = Instant::now();
        let bytes_before = connection.as_ref().map_or(0, |c| c.received().0);
        Self {
            connection,
            started: now,
            bytes_before,
            parts_bytes: 0,
            last_part: now,
            idle,
        }
    }

    /// A part of `bytes` was read.
    fn part_read(&mut self, bytes: usize) {
        self.parts_bytes = self.parts_bytes.saturating_add(bytes as u64);
        self.last_part = Instant::now();
    }

    /// Bytes of the upload received so far, and when the last of them arrived.
    fn progress(&self) -> (u64, Instant) {
        match &self.connection {
            Some(connection) => {
                let (bytes, last) = connection.received();
                (bytes - self.bytes_before, last.max(self.started))
            }
            None => (self.parts_bytes, self.last_part),
        }
    }

    /// When the upload stalls if nothing more arrives, and when it is too slow if no more
    /// than it has now arrives.
    fn deadlines(&self) -> (Instant, Instant) {
        let (bytes, last) = self.progress();
        let paced = Duration::from_secs_f64((bytes + 1) as f64 / MIN_UPLOAD_BYTES_PER_SEC as f64)
            .max(PACE_GRACE_IDLE_TIMEOUTS * self.idle);
        (last + self.idle, self.started + paced)
    }

    /// The error for an upload past one of its deadlines, if it is.
    fn violation(&self) -> Option<ApiError> {
        let now = Instant::now();
        let (stall_at, pace_at) = self.deadlines();
        if now >= stall_at {
            Some(ApiError::Stalled {
                secs: self.idle.as_secs(),
            })
        } else if now >= pace_at {
            Some(ApiError::TooSlow {
                received: self.progress().0,
                secs: self.started.elapsed().as_secs_f64(),
                min_bytes_per_sec: MIN_UPLOAD_BYTES_PER_SEC,
            })
        } else {
            None
        }
    }
}

/// A read of the request body, while the upload keeps its pace.
async fn body_part<T>(
    part: impl Future<Output = Result<T, MultipartError>>,
    pace: &UploadPace,
    limit: u64,
) -> Result<T, ApiError> {
    let mut part = std::pin::pin!(part);
    loop {
        let (stall_at, pace_at) = pace.deadlines();
        let wait = stall_at.min(pace_at).into();
        match tokio::time::timeout_at(wait, part.as_mut()).await {
            Ok(result) => return result.map_err(|err| ApiError::from_multipart(err, limit)),
            // Bytes arrived meanwhile, without completing the part: wait on.
            Err(_) => {
                if let Some(err) = pace.violation() {
                    return Err(err);
                }
            }
        }
    }
}

/// The upload's file name, reduced to its last component: it names the upload in messages
/// and its extension is a format hint for the decoder.
fn upload_name(file_name: Option<&str>) -> String {
    let name = file_name
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or("upload");
    name.chars().take(200).collect()
}

/// Runs blocking work (index access) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::Internal(format!("worker failed: {err}")))?
}

/// Runs audio analysis off the async threads, at most one per engine permit.
async fn analysis<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = Arc::clone(&state.shared.engine_permits)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal("the server is shutting down".to_string()))?;
    blocking(move || {
        let _permit = permit;
        work()
    })
    .await
}

fn uptime(shared: &Shared) -> f64 {
    shared.started.elapsed().as_secs_f64()
}

// ------------------------------------------------------------------------------------------
// Handlers

/// `POST /api/v1/search`: identifies the clip in field `audio`.
pub async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
    headers: HeaderMap,
    connection: Option<Extension<ConnectInfo<ConnectionActivity>>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = Instant::now();
    let Query(params) = params?;
    let mut match_config = state.shared.match_config.clone();
    if let Some(top) = params.top {
        if !(1..=MAX_TOP).contains(&top) {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("top must be within 1..={MAX_TOP}"),
            });
        }
        match_config.top_n = top;
    }
    let form = read_upload(&state, multipart, connection, &headers).await?;
    let (bytes, name) = form.audio.ok_or(ApiError::MissingField("audio"))?;
    let shared = Arc::clone(&state.shared);
    let answer = analysis(&state, move || {
        identify(&shared, bytes, &name, &match_config)
    })
    .await?;
    state
        .shared
        .metrics
        .record_search(started.elapsed().as_secs_f64(), answer.found);
    Ok(Json(answer))
}

/// `POST /api/v1/tracklist`: every song heard in the recording in field `audio`, when, and
/// from where in the song (docs/API.md). One engine permit for the whole recording.
pub async fn tracklist(
    State(state): State<AppState>,
    headers: HeaderMap,
    connection: Option<Extension<ConnectInfo<ConnectionActivity>>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<TracklistJson>, ApiError> {
    let form = read_upload(&state, multipart, connection, &headers).await?;
    let (bytes, name) = form.audio.ok_or(ApiError::MissingField("audio"))?;
    let shared = Arc::clone(&state.shared);
    analysis(&state, move || {
        let library = caught_up_library(&shared)?;
        let source = AudioSource::Bytes { bytes, name: &name };
        let list = library.tracklist(source, &CancelToken::new(), |_| {})?;
        Ok(Json(TracklistJson {
            recording_seconds: list.recording_secs,
            songs: list.entries.iter().map(TracklistEntryJson::from).collect(),
            windows: list.windows,
            silent_windows: list.silent_windows,
            processing_time_ms: list.elapsed_ms,
        }))
    })
    .await
}

/// The library, brought up to date with other processes' changes
/// ([`catch_up_with_other_processes`]), under the read lock.
fn caught_up_library(shared: &Shared) -> Result<RwLockReadGuard<'_, Library>, ApiError> {
    catch_up_with_other_processes(shared)?;
    Ok(shared
        .library
        .read()
        .unwrap_or_else(PoisonError::into_inner))
}

/// Brings the index up to date with songs another process (`audiofp index` or `remove`
/// on the same database) added or removed since the last request: a query of the
/// database's change counter under the read lock, the write lock only when it moved.
fn catch_up_with_other_processes(shared: &Shared) -> Result<(), ApiError> {
    let changed = shared
        .library
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .store_changed_elsewhere()?;
    if changed {
        shared
            .library
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .catch_up_with_store()?;
    }
    Ok(())
}

/// Identifies a clip with the library's full query path (early answer, speed and pitch
/// search) under the read lock, for the request's `top` songs (so that a request for one
/// song is answered as `audiofp identify` answers it): searches run side by side, writers
/// wait for them.
fn identify(
    shared: &Shared,
    bytes: Vec<u8>,
    name: &str,
    match_config: &MatchConfig,
) -> Result<SearchResponse, ApiError> {
    let library = caught_up_library(shared)?;
    let answer = library.identify_bytes(bytes, name, match_config.top_n)?;
    drop(library);
    let matches: Vec<MatchJson> = answer
        .matches
        .iter()
        .take(match_config.top_n)
        .map(|m| MatchJson {
            song_id: m.song.id,
            title: m.song.title.clone(),
            artist: m.song.artist.clone(),
            album: m.song.album.clone(),
            confidence: m.confidence,
            offset_seconds: m.offset_secs,
            clip_from_seconds: m.clip_from_secs,
            aligned_hashes: m.aligned,
            source_checked: m.source.is_some(),
            duration_seconds: m.song.duration_secs,
            repeats: m.repeats.clone(),
        })
        .collect();
    Ok(SearchResponse {
        found: !matches.is_empty(),
        matches,
        processing_time_ms: answer.processing_ms(),
        clip_seconds: answer.clip_secs,
        query_hashes: answer.query_landmarks,
        speed: answer.speed,
        pitch_semitones: answer.pitch_semitones,
    })
}

/// `GET /api/v1/songs`: a page of songs, optionally filtered.
pub async fn list_songs(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<SongPage>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    let offset = params.offset.unwrap_or(0);
    let needle = params
        .q
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty());
    let library = state.library();
    blocking(move || {
        let mut songs = {
            let library = library.read().unwrap_or_else(PoisonError::into_inner);
            library.store().songs()?
        };
        if let Some(needle) = &needle {
            songs.retain(|s| {
                [Some(&s.title), s.artist.as_ref(), s.album.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|field| field.to_lowercase().contains(needle))
            });
        }
        let total = songs.len();
        let items = songs
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(SongJson::from)
            .collect();
        Ok(Json(SongPage {
            items,
            total,
            limit,
            offset,
        }))
    })
    .await
}

/// The song id of a path, written as the API writes ids: `7`, not `+7` or `007`, so one
/// song has one URL.
fn song_id(path: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(text) = path?;
    match text.parse::<i64>() {
        Ok(id) if id.to_string() == text => Ok(id),
        _ => Err(ApiError::BadRequest {
            code: "invalid_id",
            message: format!("song ids are plain integers such as 7, not {text:?}"),
        }),
    }
}

/// `GET /api/v1/songs/{id}`.
pub async fn get_song(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SongJson>, ApiError> {
    let id = song_id(id)?;
    let library = state.library();
    blocking(move || {
        let library = library.read().unwrap_or_else(PoisonError::into_inner);
        let song = library.store().song(id)?;
        song.map(|s| Json(SongJson::from(s)))
            .ok_or(ApiError::SongNotFound(id))
    })
    .await
}

/// `GET /api/v1/songs/{id}/shared-audio`: the other songs that hold this song's audio, or
/// whose audio it holds (docs/API.md). Matching work, so it takes an engine permit.
pub async fn shared_audio(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SongSharedAudio>, ApiError> {
    let id = song_id(id)?;
    let shared = Arc::clone(&state.shared);
    analysis(&state, move || {
        let library = caught_up_library(&shared)?;
        if library.store().song(id)?.is_none() {
            return Err(ApiError::SongNotFound(id));
        }
        let report = library.shared_audio_of(id)?;
        Ok(Json(SongSharedAudio::of_song(id, &report)))
    })
    .await
}

/// `POST /api/v1/songs`: indexes the song in field `audio`.
pub async fn add_song(
    State(state): State<AppState>,
    headers: HeaderMap,
    connection: Option<Extension<ConnectInfo<ConnectionActivity>>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = read_upload(&state, multipart, connection, &headers).await?;
    let (bytes, file_name) = form.audio.ok_or(ApiError::MissingField("audio"))?;

    // Duplicates are refused before the expensive analysis (and again under the write lock).
    let library = state.library();
    let (bytes, content_hash) = blocking(move || {
        let content_hash = blake3::hash(&bytes).to_hex().to_string();
        let library = library.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = library.store().find_by_content_hash(&content_hash)? {
            return Err(ApiError::Duplicate {
                song_id: existing.id,
            });
        }
        Ok((bytes, content_hash))
    })
    .await?;

    // Decode and fingerprint without any lock.
    let shared = Arc::clone(&state.shared);
    let size = bytes.len() as u64;
    let name = file_name.clone();
    let (fingerprint, decoded) = analysis(&state, move || {
        Ok(engine::fingerprint_source(
            AudioSource::Bytes { bytes, name: &name },
            &shared.fingerprint_config,
            &shared.match_config,
            Side::Reference,
            &CancelToken::new(),
        )?)
    })
    .await?;
    let file_title = (file_name != "upload")
        .then(|| crate::paths::title_from_file_name(FsPath::new(&file_name)));
    let song = NewSong {
        title: form
            .title
            .or(decoded.tags.title)
            .or(file_title)
            .unwrap_or_else(|| "Untitled".to_string()),
        artist: form.artist.or(decoded.tags.artist),
        album: form.album.or(decoded.tags.album),
        duration_secs: fingerprint.duration_secs,
        path: None,
        file_size: Some(size),
        file_mtime: None,
        content_hash,
        added_at: None,
    };

    // The write lock only for the store write and the index update.
    let library = state.library();
    let record = blocking(move || {
        let mut library = library.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = library.store().find_by_content_hash(&song.content_hash)? {
            return Err(ApiError::Duplicate {
                song_id: existing.id,
            });
        }
        let record = library.add(&song, &fingerprint)?;
        library.prepare();
        Ok(record)
    })
    .await?;
    state.shared.metrics.record_added();
    tracing::info!("indexed song {} ({:?})", record.id, record.title);
    let location = format!("/api/v1/songs/{}", record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(SongJson::from(record)),
    )
        .into_response())
}

/// `DELETE /api/v1/songs/{id}`.
pub async fn delete_song(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = song_id(id)?;
    let library = state.library();
    let removed = blocking(move || {
        let mut library = library.write().unwrap_or_else(PoisonError::into_inner);
        Ok(library.remove(id)?)
    })
    .await?;
    if !removed {
        return Err(ApiError::SongNotFound(id));
    }
    state.shared.metrics.record_removed();
    tracing::info!("removed song {id}");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/stats`.
pub async fn stats(State(state): State<AppState>) -> Result<Json<StatsJson>, ApiError> {
    let shared = Arc::clone(&state.shared);
    blocking(move || {
        let library = caught_up_library(&shared)?;
        let (stats, storage) = {
            let store = library.store();
            (store.stats()?, store.kind())
        };
        let index = library.inverted_index();
        Ok(Json(StatsJson {
            songs: stats.songs,
            hours: stats.total_secs / 3600.0,
            peaks: stats.peaks,
            hashes: index.posting_count(),
            memory_index_bytes: index.memory_bytes(),
            bytes_on_disk: stats.bytes_on_disk,
            storage,
            queries_served: shared.metrics.searches(),
            search_latency: shared.metrics.latency_summary(),
            uptime_seconds: uptime(&shared),
            resident_memory_bytes: resident_memory_bytes(),
        }))
    })
    .await
}

/// `GET /api/v1/health`.
pub async fn health(State(state): State<AppState>) -> Result<Json<HealthJson>, ApiError> {
    let shared = Arc::clone(&state.shared);
    blocking(move || {
        let songs = caught_up_library(&shared)?.inverted_index().song_count();
        Ok(Json(HealthJson {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            songs,
            uptime_seconds: uptime(&shared),
        }))
    })
    .await
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let shared = Arc::clone(&state.shared);
    let text = blocking(move || {
        let (songs, postings, memory) = {
            let library = caught_up_library(&shared)?;
            let index = library.inverted_index();
            (
                index.song_count(),
                index.posting_count(),
                index.memory_bytes(),
            )
        };
        let rss = resident_memory_bytes().unwrap_or(0);
        Ok(shared.metrics.render(&[
            ("audiofp_songs_indexed", "Songs in the index.", songs as f64),
            (
                "audiofp_index_hashes",
                "Landmark hashes in the in-memory search index.",
                postings as f64,
            ),
            (
                "audiofp_index_memory_bytes",
                "Bytes of the in-memory search index.",
                memory as f64,
            ),
            (
                "audiofp_process_resident_memory_bytes",
                "Resident memory of the server process.",
                rss as f64,
            ),
            (
                "audiofp_uptime_seconds",
                "Seconds since the server started.",
                uptime(&shared),
            ),
        ]))
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// Any path without a route.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_string())
}

/// A route called with a method it does not have.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a tracked connection (a router served by other means than `serve_on`), an
    /// upload's pace is counted from the parts read: the stall deadline follows the last
    /// part, the pace deadline the bytes read, never earlier than the grace period.
    #[test]
    fn an_untracked_upload_is_paced_by_the_parts_read() {
        let idle = Duration::from_secs(30);
        let mut pace = UploadPace::new(None, idle);
        let (stall_at, pace_at) = pace.deadlines();
        assert_eq!(stall_at, pace.started + idle);
        assert_eq!(pace_at, pace.started + PACE_GRACE_IDLE_TIMEOUTS * idle);
        assert!(pace.violation().is_none());

        // Enough bytes for longer than the grace period at the minimum rate.
        let bytes = MIN_UPLOAD_BYTES_PER_SEC * 100;
        pace.part_read(usize::try_from(bytes).unwrap_or(usize::MAX));
        let (received, last) = pace.progress();
        assert_eq!(received, bytes);
        assert_eq!(last, pace.last_part);
        let (stall_at, pace_at) = pace.deadlines();
        assert_eq!(stall_at, pace.last_part + idle);
        assert!(
            pace_at > pace.started + Duration::from_secs(100),
            "{pace_at:?}"
        );
        assert!(
            pace_at < pace.started + Duration::from_secs(101),
            "{pace_at:?}"
        );

        // With no idle time allowed, the upload has stalled at once.
        let stalled = UploadPace::new(None, Duration::ZERO);
        assert!(matches!(
            stalled.violation(),
            Some(ApiError::Stalled { .. })
        ));
    }
}
