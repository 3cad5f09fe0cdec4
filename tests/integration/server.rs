//! Integration tests of the REST API (`audiofp serve`): the real server on 127.0.0.1 with an
//! ephemeral port over a temporary SQLite index of synthetic songs, called over TCP with a
//! real HTTP client (reqwest), plus raw sockets where a client library would hide what is
//! tested (streamed bodies, a request in flight during shutdown) and the real binary for the
//! command line and signal handling.

// Tests may unwrap (clippy.toml allows it in test functions; this covers the helpers too):
// a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use audiofp::cancel::CancelToken;
use audiofp::config::{FingerprintConfig, MatchConfig};
use audiofp::engine::Fingerprint;
use audiofp::index::{NewSong, OpenMode, StorageKind};
use audiofp::library::Library;
use audiofp::server::{AppState, ServerSettings, serve_on};
use audiofp::testkit::{distort, synth, wav};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Sample rate of the synthetic songs.
const SR: u32 = 22_050;
/// Length of each library song.
const SONG_SECS: f32 = 20.0;
/// Largest accepted error of a reported offset.
const OFFSET_TOLERANCE_SECS: f64 = 0.1;

// ------------------------------------------------------------------------------------------
// Fixtures

/// A synthetic song: samples, WAV bytes and the analysis the index needs.
struct Song {
    samples: Vec<f32>,
    wav: Vec<u8>,
    meta: NewSong,
    fingerprint: Fingerprint,
}

/// Encodes mono samples as a 16-bit WAV file's bytes.
fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.wav");
    wav::write_wav_i16(&path, samples, rate, 1).unwrap();
    std::fs::read(&path).unwrap()
}

fn analyse(seed: u64, title: &str, artist: &str, album: Option<&str>) -> Song {
    let samples = synth::song(seed, SONG_SECS, SR);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("song{seed}.wav"));
    wav::write_wav_i16(&path, &samples, SR, 1).unwrap();
    let (mut meta, fingerprint) = audiofp::indexer::analyse_file(
        &path,
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        &CancelToken::new(),
    )
    .unwrap();
    meta.title = title.to_string();
    meta.artist = Some(artist.to_string());
    meta.album = album.map(str::to_string);
    meta.path = None;
    let wav = std::fs::read(&path).unwrap();
    Song {
        samples,
        wav,
        meta,
        fingerprint,
    }
}

/// The songs every test server starts with (analysed once per test binary).
fn library_songs() -> &'static [Song] {
    static SONGS: OnceLock<Vec<Song>> = OnceLock::new();
    SONGS.get_or_init(|| {
        vec![
            analyse(1, "Morning Light", "The Examples", Some("First Album")),
            analyse(2, "Night Drive", "Synth Duo", Some("Second Album")),
            analyse(3, "Rainy Streets", "The Examples", None),
        ]
    })
}

/// A song that is not in the library.
fn outside_song() -> &'static Song {
    static SONG: OnceLock<Song> = OnceLock::new();
    SONG.get_or_init(|| analyse(77, "Uploaded Tune", "Newcomer", None))
}

/// A noisy excerpt of `song` as WAV bytes.
fn clip_of(song: &Song, start_secs: f32, len_secs: f32) -> Vec<u8> {
    let excerpt = distort::excerpt(&song.samples, SR, start_secs, len_secs);
    let noisy = distort::add_white_noise(&excerpt, 15.0, 7);
    wav_bytes(&noisy, SR)
}

/// A server on 127.0.0.1:<ephemeral> over a fresh SQLite index of [`library_songs`].
struct TestServer {
    addr: SocketAddr,
    client: reqwest::Client,
    ids: Vec<i64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with(ServerSettings::default()).await
    }

    async fn start_with(settings: ServerSettings) -> Self {
        let songs = tokio::task::spawn_blocking(library_songs).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut library = Library::open(
            &StorageKind::Sqlite(dir.path().join("index.db")),
            &FingerprintConfig::default(),
            &MatchConfig::default(),
            OpenMode::CreateIfMissing,
        )
        .unwrap();
        let ids = songs
            .iter()
            .map(|s| library.add(&s.meta, &s.fingerprint).unwrap().id)
            .collect();
        library.prepare();
        let state = AppState::new(library, settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(listener, state, async move {
            stop.await.ok();
        }));
        Self {
            addr,
            client: reqwest::Client::new(),
            ids,
            shutdown: Some(shutdown),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The server's database file.
    fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("index.db")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// POSTs `audio` (and text fields) as multipart/form-data.
    async fn post_audio(
        &self,
        path: &str,
        audio: Vec<u8>,
        file_name: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = Form::new().part(
            "audio",
            Part::bytes(audio)
                .file_name(file_name.to_string())
                .mime_str("audio/wav")
                .unwrap(),
        );
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        self.client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    async fn search(&self, clip: Vec<u8>) -> Value {
        let response = self
            .post_audio("/api/v1/search", clip, "clip.wav", &[])
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Signals shutdown and waits for the server to stop.
    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server did not stop")
                .unwrap()
                .unwrap();
        }
    }
}

/// Asserts the status and the `{"error": {"code", "message"}}` body; returns the body.
async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "expected {status} {code}, got {got}: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "error content type {content_type:?}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], code, "{text}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{text}"
    );
    body
}

/// A multipart body with one file field.
fn multipart_body(boundary: &str, field: &str, audio: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(audio);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// Reads a whole HTTP/1.1 response (the server closes the connection after it); returns
/// the status and the body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    // A reset after the response was received still leaves the response readable.
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

// ------------------------------------------------------------------------------------------
// Search

/// `audiofp index` and `audiofp remove` on the server's database while it runs (here: a
/// second connection, as another process has): the next request sees their songs, added and
/// gone, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn songs_another_process_adds_or_removes_are_searched_without_a_restart() {
    let server = TestServer::start().await;
    let db = server.db_path();
    let newcomer = tokio::task::spawn_blocking(|| analyse(4, "Late Arrival", "The CLI", None))
        .await
        .unwrap();
    let removed_id = server.ids[0];
    let clip = clip_of(&newcomer, 3.0, 6.0);
    let newcomer_id = tokio::task::spawn_blocking(move || {
        let mut other = Library::open_for_adding(
            &StorageKind::Sqlite(db),
            &FingerprintConfig::default(),
            &MatchConfig::default(),
            OpenMode::MustExist,
        )
        .unwrap();
        let id = other.add(&newcomer.meta, &newcomer.fingerprint).unwrap().id;
        assert!(other.remove(removed_id).unwrap());
        id
    })
    .await
    .unwrap();

    let answer = server.search(clip).await;
    assert_eq!(answer["matches"][0]["song_id"], newcomer_id, "{answer}");
    let answer = server.search(clip_of(&library_songs()[0], 3.0, 6.0)).await;
    assert_eq!(answer["found"], false, "the removed song: {answer}");
    let health = server.get_json("/api/v1/health").await;
    assert_eq!(health["songs"], 3, "{health}");
    let stats = server.get_json("/api/v1/stats").await;
    assert_eq!(stats["songs"], 3, "{stats}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_names_the_song_and_the_offset_of_a_noisy_excerpt() {
    let server = TestServer::start().await;
    let song = &library_songs()[1];
    let answer = server.search(clip_of(song, 5.0, 8.0)).await;
    assert_eq!(answer["found"], true, "{answer}");
    let best = &answer["matches"][0];
    assert_eq!(best["song_id"], server.ids[1], "{answer}");
    assert_eq!(best["title"], "Night Drive");
    assert_eq!(best["artist"], "Synth Duo");
    assert_eq!(best["album"], "Second Album");
    let confidence = best["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence), "{answer}");
    let offset = best["offset_seconds"].as_f64().unwrap();
    assert!(
        (offset - 5.0).abs() <= OFFSET_TOLERANCE_SECS,
        "offset {offset}: {answer}"
    );
    assert!(best["aligned_hashes"].as_u64().unwrap() > 0);
    // Generated songs never repeat a passage exactly (identify.rs has one that does).
    assert_eq!(best["repeats"], serde_json::json!([]), "{answer}");
    assert!(answer["processing_time_ms"].as_f64().unwrap() > 0.0);
    assert!((answer["clip_seconds"].as_f64().unwrap() - 8.0).abs() < 0.05);
    assert_eq!(answer["speed"], 1.0, "{answer}");
    assert_eq!(answer["pitch_semitones"], 0.0, "{answer}");

    // The same samples declared at a 2 % higher rate play 2 % fast: the speed search finds
    // them, and the answer says at which speed.
    let excerpt = distort::excerpt(&song.samples, SR, 5.0, 8.0);
    let fast_rate = (f64::from(SR) * 1.02).round() as u32;
    let answer = server.search(wav_bytes(&excerpt, fast_rate)).await;
    assert_eq!(answer["matches"][0]["song_id"], server.ids[1], "{answer}");
    assert_eq!(answer["speed"], 1.02, "{answer}");
    server.stop().await;
}

/// A search for one song (`top=1`) is answered as `audiofp identify` answers it: from the
/// clip's opening when that is conclusive. A search for more (the default, 5) reads the
/// whole clip, where a second song may begin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_for_one_song_may_stop_at_the_opening_and_one_for_more_reads_it_all() {
    let server = TestServer::start().await;
    let song = &library_songs()[1];
    let clip = wav_bytes(&distort::excerpt(&song.samples, SR, 5.0, 8.0), SR);
    let more = server.search(clip.clone()).await;
    let response = server
        .post_audio("/api/v1/search?top=1", clip, "clip.wav", &[])
        .await;
    assert_eq!(response.status(), 200);
    let one: Value = response.json().await.unwrap();
    for answer in [&one, &more] {
        assert_eq!(answer["matches"][0]["song_id"], server.ids[1], "{answer}");
    }
    let hashes = |answer: &Value| answer["query_hashes"].as_u64().unwrap();
    assert!(
        hashes(&one) * 2 < hashes(&more),
        "one song: {one}\nfive songs: {more}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_of_an_unindexed_song_finds_nothing() {
    let server = TestServer::start().await;
    let outside = tokio::task::spawn_blocking(outside_song).await.unwrap();
    let answer = server.search(clip_of(outside, 4.0, 8.0)).await;
    assert_eq!(answer["found"], false, "{answer}");
    assert_eq!(answer["matches"], Value::Array(Vec::new()));
    assert!(answer["processing_time_ms"].as_f64().is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_rejects_bad_input_with_json_errors() {
    let server = TestServer::start().await;
    let search = "/api/v1/search";

    // No `audio` field.
    let form = Form::new().text("title", "x");
    let response = server
        .client
        .post(server.url(search))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "missing_field").await;

    // Not multipart at all.
    let response = server
        .client
        .post(server.url(search))
        .header("content-type", "application/json")
        .body("{\"audio\": 1}")
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 415, "not_a_form").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("application/json") && message.contains("field named `audio`"),
        "{message}"
    );
    // Raw audio bytes instead of a form: the same, naming what was sent.
    let response = server
        .client
        .post(server.url(search))
        .header("content-type", "audio/wav")
        .body(clip_of(&library_songs()[0], 1.0, 2.0))
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 415, "not_a_form").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audio/wav"),
        "{body}"
    );
    // A form header without its boundary is a malformed form.
    let response = server
        .client
        .post(server.url(search))
        .header("content-type", "multipart/form-data")
        .body("--x--")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid_multipart").await;

    // Empty file.
    let response = server.post_audio(search, Vec::new(), "clip.wav", &[]).await;
    expect_error(response, 400, "empty_file").await;

    // Not audio: no decoder recognises it.
    let text = b"Hello, this is a text file, not music at all.\n".repeat(200);
    let response = server.post_audio(search, text, "notes.txt", &[]).await;
    expect_error(response, 415, "unsupported_format").await;

    // Too short to identify.
    let short = distort::excerpt(&library_songs()[0].samples, SR, 3.0, 0.3);
    let response = server
        .post_audio(search, wav_bytes(&short, SR), "short.wav", &[])
        .await;
    expect_error(response, 400, "too_short").await;

    // Digital silence.
    let silence = vec![0.0f32; SR as usize * 3];
    let response = server
        .post_audio(search, wav_bytes(&silence, SR), "silence.wav", &[])
        .await;
    expect_error(response, 400, "silent").await;

    // A WAV header announcing far more data than the file holds.
    let mut truncated = clip_of(&library_songs()[0], 2.0, 6.0);
    truncated.truncate(truncated.len() / 3);
    let response = server.post_audio(search, truncated, "cut.wav", &[]).await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    // A clip is identified from what is there (only indexing refuses cut files).
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["matches"][0]["song_id"], server.ids[0], "{answer}");

    // Bad query string.
    let response = server
        .post_audio(
            "/api/v1/search?top=0",
            clip_of(&library_songs()[0], 2.0, 6.0),
            "clip.wav",
            &[],
        )
        .await;
    expect_error(response, 400, "invalid_query").await;
    let response = server
        .post_audio(
            "/api/v1/search?top=lots",
            clip_of(&library_songs()[0], 2.0, 6.0),
            "clip.wav",
            &[],
        )
        .await;
    let body = expect_error(response, 400, "invalid_query").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("bad query parameter: top") && !message.contains("deserialize"),
        "names the parameter in the client's terms: {message}"
    );

    // The server is still fine.
    let answer = server.search(clip_of(&library_songs()[2], 6.0, 6.0)).await;
    assert_eq!(answer["matches"][0]["song_id"], server.ids[2], "{answer}");
    server.stop().await;
}

/// A client that stalls (half its headers sent, an upload stopped half-way, a keep-alive
/// connection left open) is disconnected once the connection has been idle for the timeout,
/// and the server goes on answering others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_connections_are_closed() {
    let idle_timeout = Duration::from_millis(800);
    let server = TestServer::start_with(ServerSettings {
        idle_timeout,
        ..ServerSettings::default()
    })
    .await;
    let half_headers = "POST /api/v1/search HTTP/1.1\r\nHost: test\r\n".to_string();
    let half_upload = "POST /api/v1/search HTTP/1.1\r\nHost: test\r\n\
        Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 1000000\r\n\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\nRIFF"
        .to_string();
    let idle_keep_alive = "GET /api/v1/health HTTP/1.1\r\nHost: test\r\n\r\n".to_string();
    for (what, sent) in [
        ("half the headers", half_headers),
        ("half an upload", half_upload),
        ("an idle keep-alive connection", idle_keep_alive),
    ] {
        let started = std::time::Instant::now();
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(sent.as_bytes()).await.unwrap();
        // Whatever the server answers, it must then close the connection.
        let mut received = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received)).await;
        assert!(closed.is_ok(), "{what}: still open after 20 s");
        let waited = started.elapsed();
        assert!(
            waited >= idle_timeout,
            "{what}: closed after {waited:?}, before the timeout"
        );
        let text = String::from_utf8_lossy(&received);
        if what.contains("keep-alive") {
            assert!(text.starts_with("HTTP/1.1 200"), "{what}: {text}");
        }
        if what.contains("upload") {
            assert!(
                text.starts_with("HTTP/1.1 408") && text.contains("upload_stalled"),
                "{what}: {text}"
            );
        }
    }
    assert_eq!(server.get("/api/v1/health").await.status(), 200);
    server.stop().await;
}

/// A client that keeps a connection busy by trickling bytes (each byte sooner than the idle
/// timeout) is cut off all the same: request headers must be whole within the timeout of
/// their first byte, and an upload must keep a minimum average rate once it has run for two
/// timeouts. The server goes on answering others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_trickling_bytes_are_cut_off() {
    let idle_timeout = Duration::from_millis(800);
    let server = TestServer::start_with(ServerSettings {
        idle_timeout,
        ..ServerSettings::default()
    })
    .await;
    let every = Duration::from_millis(150);
    let upload_head = "POST /api/v1/search HTTP/1.1\r\nHost: test\r\n\
        Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000\r\n\r\n";
    let trickled_headers = "GET /api/v1/health HTTP/1.1\r\nHost: test\r\nUser-Agent: slow\r\n\r\n";
    let trickled_body =
        "--XyZ\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n"
            .to_string()
            + &"R".repeat(200);
    for (what, at_once, trickled) in [
        (
            "headers sent a byte at a time",
            "",
            trickled_headers.to_string(),
        ),
        (
            "an upload sent a byte at a time",
            upload_head,
            trickled_body,
        ),
    ] {
        let trickle_time = every * trickled.len() as u32;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        writer.write_all(at_once.as_bytes()).await.unwrap();
        let started = Instant::now();
        let trickler = tokio::spawn(async move {
            for byte in trickled.as_bytes() {
                if writer.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(every).await;
            }
            writer
        });
        // The trickling stops at the first byte of an answer, so that no byte sent after the
        // server closed makes it reset the connection before the answer is read.
        let mut received = Vec::new();
        let closed = tokio::time::timeout(trickle_time, async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf).await {
                trickler.abort();
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        let waited = started.elapsed();
        trickler.abort();
        assert!(
            closed.is_ok(),
            "{what}: still open after {waited:?}, the time the whole request takes to trickle"
        );
        assert!(
            waited >= idle_timeout && waited < idle_timeout * 4,
            "{what}: closed after {waited:?}, not about the timeout ({idle_timeout:?})"
        );
        let text = String::from_utf8_lossy(&received);
        if what.contains("upload") {
            assert!(
                text.starts_with("HTTP/1.1 408") && text.contains("upload_too_slow"),
                "{what}: {text}"
            );
        } else {
            assert!(text.is_empty(), "{what}: answered {text}");
        }
    }
    assert_eq!(server.get("/api/v1/health").await.status(), 200);
    server.stop().await;
}

/// A request that takes longer to handle than the idle timeout (a long song analysed for
/// `POST /songs`) is answered: the connection is not idle while its request is handled,
/// although hyper keeps a read pending on it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_handled_longer_than_the_idle_timeout_is_answered() {
    let idle_timeout = Duration::from_millis(50);
    let server = TestServer::start_with(ServerSettings {
        idle_timeout,
        ..ServerSettings::default()
    })
    .await;
    let song = synth::song(4242, 180.0, SR);
    let started = Instant::now();
    let response = server
        .post_audio("/api/v1/songs", wav_bytes(&song, SR), "long.wav", &[])
        .await;
    let took = started.elapsed();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    assert!(
        took > 2 * idle_timeout,
        "the analysis took {took:?}, too short to test the timeout"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_get_413_whether_announced_or_streamed() {
    let limit = 64 * 1024;
    let server = TestServer::start_with(ServerSettings {
        max_content_length: limit,
        ..ServerSettings::default()
    })
    .await;
    let big = clip_of(&library_songs()[0], 0.0, 8.0); // ~350 KB
    assert!(big.len() as u64 > 3 * limit);

    // Content-Length announced: refused before the body is read.
    let response = server
        .post_audio("/api/v1/search", big.clone(), "big.wav", &[])
        .await;
    let body = expect_error(response, 413, "too_large").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("65536"),
        "{body}"
    );
    let response = server
        .post_audio("/api/v1/songs", big.clone(), "big.wav", &[])
        .await;
    expect_error(response, 413, "too_large").await;

    // Chunked (no Content-Length): refused when the limit is crossed.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let boundary = "audiofpBoundary42";
    let head = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in multipart_body(boundary, "audio", &big).chunks(16 * 1024) {
        let framed = [
            format!("{:x}\r\n", chunk.len()).as_bytes(),
            chunk,
            b"\r\n".as_slice(),
        ]
        .concat();
        if stream.write_all(&framed).await.is_err() {
            break; // The server stopped reading: its answer is waiting.
        }
    }
    stream.write_all(b"0\r\n\r\n").await.ok();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");

    // Small requests still work.
    let health = server.get_json("/api/v1/health").await;
    assert_eq!(health["status"], "ok");
    server.stop().await;
}

/// A client that hangs up in the middle of its upload sent no bad request: the metrics count
/// it apart (499, client closed), not as a 400 the server answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_client_abandons_is_counted_as_client_closed() {
    let server = TestServer::start().await;
    let boundary = "audiofpBoundary7";
    let clip = clip_of(&library_songs()[0], 1.0, 5.0);
    let body = multipart_body(boundary, "audio", &clip);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 3]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);

    let counted = |metrics: &str, status: &str| {
        metrics.lines().any(|line| {
            line.starts_with("audiofp_http_requests_total{method=\"POST\",route=\"/api/v1/search\"")
                && line.contains(&format!("status=\"{status}\""))
        })
    };
    let started = Instant::now();
    let metrics = loop {
        let metrics = server.get("/metrics").await.text().await.unwrap();
        if counted(&metrics, "499") || started.elapsed() > Duration::from_secs(10) {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(counted(&metrics, "499"), "{metrics}");
    assert!(!counted(&metrics, "400"), "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_searches_all_succeed() {
    let server = TestServer::start().await;
    let songs = library_songs();
    let mut requests = Vec::new();
    for i in 0..12usize {
        let which = i % songs.len();
        let clip = clip_of(&songs[which], 2.0 + i as f32, 5.0);
        let client = server.client.clone();
        let url = server.url("/api/v1/search");
        requests.push(tokio::spawn(async move {
            let form = Form::new().part("audio", Part::bytes(clip).file_name("c.wav"));
            let response = client.post(url).multipart(form).send().await.unwrap();
            assert_eq!(response.status(), 200);
            (which, response.json::<Value>().await.unwrap())
        }));
    }
    for request in requests {
        let (which, answer) = request.await.unwrap();
        assert_eq!(
            answer["matches"][0]["song_id"], server.ids[which],
            "{answer}"
        );
    }
    let stats = server.get_json("/api/v1/stats").await;
    assert_eq!(stats["queries_served"], 12);
    server.stop().await;
}

// ------------------------------------------------------------------------------------------
// Songs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn songs_are_listed_paginated_and_filtered() {
    let server = TestServer::start().await;
    let all = server.get_json("/api/v1/songs").await;
    assert_eq!(all["total"], 3, "{all}");
    assert_eq!(all["offset"], 0);
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], server.ids[0]);
    assert_eq!(items[0]["title"], "Morning Light");
    assert!((items[0]["duration_seconds"].as_f64().unwrap() - 20.0).abs() < 0.1);
    assert_eq!(items[2]["album"], Value::Null);

    let page = server.get_json("/api/v1/songs?limit=2&offset=1").await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    let ids: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(
        ids,
        [&Value::from(server.ids[1]), &Value::from(server.ids[2])]
    );

    let past_end = server.get_json("/api/v1/songs?offset=10").await;
    assert_eq!(past_end["total"], 3);
    assert_eq!(past_end["items"], Value::Array(Vec::new()));

    // Filter on artist (case-insensitive), title, album.
    let by_artist = server.get_json("/api/v1/songs?q=the%20EXAMPLES").await;
    assert_eq!(by_artist["total"], 2, "{by_artist}");
    let by_title = server.get_json("/api/v1/songs?q=drive").await;
    assert_eq!(by_title["total"], 1);
    assert_eq!(by_title["items"][0]["id"], server.ids[1]);
    let by_album = server
        .get_json("/api/v1/songs?q=first%20album&limit=1")
        .await;
    assert_eq!(by_album["total"], 1);
    assert_eq!(by_album["items"][0]["id"], server.ids[0]);
    let none = server.get_json("/api/v1/songs?q=zzzz").await;
    assert_eq!(none["total"], 0);

    let response = server.get("/api/v1/songs?limit=-1").await;
    expect_error(response, 400, "invalid_query").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_song_is_fetched_by_id_and_unknown_ids_are_404() {
    let server = TestServer::start().await;
    let id = server.ids[2];
    let song = server.get_json(&format!("/api/v1/songs/{id}")).await;
    assert_eq!(song["id"], id);
    assert_eq!(song["title"], "Rainy Streets");
    assert_eq!(song["artist"], "The Examples");
    assert_eq!(song["content_hash"].as_str().unwrap().len(), 64);
    assert!(song["num_peaks"].as_u64().unwrap() > 0);

    let response = server.get("/api/v1/songs/999999").await;
    let body = expect_error(response, 404, "song_not_found").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("999999")
    );
    let response = server.get("/api/v1/songs/abc").await;
    expect_error(response, 400, "invalid_id").await;
    // One song, one URL: other spellings of an id are refused, not aliases.
    for spelling in ["+1", "01", "1.0", " 1"] {
        let response = server
            .get(&format!("/api/v1/songs/{}", spelling.replace(' ', "%20")))
            .await;
        expect_error(response, 400, "invalid_id").await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_song_is_indexed_searchable_and_not_indexed_twice() {
    let server = TestServer::start().await;
    let song = tokio::task::spawn_blocking(outside_song).await.unwrap();

    let response = server
        .post_audio(
            "/api/v1/songs",
            song.wav.clone(),
            "uploaded.wav",
            &[
                ("title", "Uploaded Tune"),
                ("artist", "Newcomer"),
                ("album", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v1/songs/{id}"));
    assert_eq!(created["title"], "Uploaded Tune");
    assert_eq!(created["artist"], "Newcomer");
    assert_eq!(created["album"], Value::Null);
    assert!((created["duration_seconds"].as_f64().unwrap() - 20.0).abs() < 0.1);
    assert_eq!(
        created["content_hash"],
        blake3::hash(&song.wav).to_hex().to_string()
    );
    assert_eq!(server.get_json(&location).await["title"], "Uploaded Tune");
    assert_eq!(server.get_json("/api/v1/songs").await["total"], 4);

    // Searchable right away.
    let answer = server.search(clip_of(song, 9.0, 6.0)).await;
    assert_eq!(answer["matches"][0]["song_id"], id, "{answer}");
    let offset = answer["matches"][0]["offset_seconds"].as_f64().unwrap();
    assert!((offset - 9.0).abs() <= OFFSET_TOLERANCE_SECS, "{answer}");

    // The same content again, under another name: 409 naming the existing song.
    let response = server
        .post_audio("/api/v1/songs", song.wav.clone(), "again.wav", &[])
        .await;
    let body = expect_error(response, 409, "duplicate").await;
    assert_eq!(body["error"]["song_id"], id);
    // Also for a song indexed before the server started.
    let response = server
        .post_audio(
            "/api/v1/songs",
            library_songs()[0].wav.clone(),
            "a.wav",
            &[],
        )
        .await;
    let body = expect_error(response, 409, "duplicate").await;
    assert_eq!(body["error"]["song_id"], server.ids[0]);

    // Without a title the file name is used.
    let other = synth::song(78, 6.0, SR);
    let response = server
        .post_audio("/api/v1/songs", wav_bytes(&other, SR), "My Demo.wav", &[])
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["title"], "My Demo");
    assert_eq!(created["artist"], Value::Null);

    // Bad uploads.
    let response = server
        .post_audio("/api/v1/songs", b"not audio".repeat(100), "x.mp3", &[])
        .await;
    expect_error(response, 415, "unsupported_format").await;
    let form = Form::new().text("title", "no audio");
    let response = server
        .client
        .post(server.url("/api/v1/songs"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "missing_field").await;
    let long_title = "x".repeat(5000);
    let response = server
        .post_audio(
            "/api/v1/songs",
            wav_bytes(&synth::song(79, 3.0, SR), SR),
            "t.wav",
            &[("title", &long_title)],
        )
        .await;
    expect_error(response, 400, "invalid_field").await;
    let silence = vec![0.0f32; SR as usize * 3];
    let response = server
        .post_audio("/api/v1/songs", wav_bytes(&silence, SR), "s.wav", &[])
        .await;
    expect_error(response, 400, "silent").await;
    assert_eq!(server.get_json("/api/v1/songs").await["total"], 5);
    server.stop().await;
}

/// `shared-audio` tells a song's other copy (the same samples, quieter: other bytes, so not a
/// 409) from a medley that plays the whole song after 10 s of other music, and from a mix that
/// starts with it (each holds the other from the start, but the mix is longer), from each
/// side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_audio_names_a_copy_a_medley_and_a_mix_from_each_side() {
    let server = TestServer::start().await;
    let song = &library_songs()[0];
    let quieter: Vec<f32> = song.samples.iter().map(|s| s * 0.7).collect();
    let intro = synth::song(2003, 10.0, SR);
    let medley = [intro.as_slice(), &song.samples].concat();
    let mix = [song.samples.as_slice(), &library_songs()[1].samples].concat();
    let mut uploaded = Vec::new();
    for (samples, name) in [
        (&quieter, "copy.wav"),
        (&medley, "medley.wav"),
        (&mix, "mix.wav"),
    ] {
        let response = server
            .post_audio("/api/v1/songs", wav_bytes(samples, SR), name, &[])
            .await;
        assert_eq!(response.status(), 201, "upload of {name}");
        let created: Value = response.json().await.unwrap();
        uploaded.push(created["id"].as_i64().unwrap());
    }
    let (original, copy, medley_id, mix_id) =
        (server.ids[0], uploaded[0], uploaded[1], uploaded[2]);
    let near = |value: &Value, seconds: f64| {
        (value.as_f64().unwrap_or(f64::NAN) - seconds).abs() <= OFFSET_TOLERANCE_SECS
    };

    let report = server
        .get_json(&format!("/api/v1/songs/{original}/shared-audio"))
        .await;
    assert_eq!(report["song_id"], original, "{report}");
    assert_eq!(report["same_audio"], serde_json::json!([copy]), "{report}");
    assert_eq!(report["contains"], serde_json::json!([]), "{report}");
    let heard_in = report["heard_in"].as_array().unwrap();
    assert_eq!(heard_in.len(), 2, "{report}");
    assert_eq!(heard_in[0]["song_id"], medley_id, "{report}");
    assert!(near(&heard_in[0]["from_seconds"], 10.0), "{report}");
    assert_eq!(heard_in[1]["song_id"], mix_id, "{report}");
    assert!(near(&heard_in[1]["from_seconds"], 0.0), "{report}");

    let report = server
        .get_json(&format!("/api/v1/songs/{medley_id}/shared-audio"))
        .await;
    assert_eq!(report["same_audio"], serde_json::json!([]), "{report}");
    assert_eq!(report["heard_in"], serde_json::json!([]), "{report}");
    let contains = report["contains"].as_array().unwrap();
    let ids: Vec<i64> = contains
        .iter()
        .filter_map(|c| c["song_id"].as_i64())
        .collect();
    assert_eq!(ids, [original.min(copy), original.max(copy)], "{report}");
    assert!(
        contains.iter().all(|c| near(&c["from_seconds"], 10.0)),
        "{report}"
    );

    let report = server
        .get_json(&format!("/api/v1/songs/{mix_id}/shared-audio"))
        .await;
    assert_eq!(report["same_audio"], serde_json::json!([]), "{report}");
    assert_eq!(report["heard_in"], serde_json::json!([]), "{report}");
    let contains: Vec<(i64, f64)> = report["contains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["song_id"].as_i64().unwrap(),
                c["from_seconds"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [
        (original, 0.0),
        (server.ids[1], SONG_SECS as f64),
        (copy, 0.0),
    ];
    assert_eq!(contains.len(), expected.len(), "{report}");
    for ((id, from), (expected_id, expected_from)) in contains.iter().zip(expected) {
        assert_eq!(*id, expected_id, "{report}");
        assert!(
            (from - expected_from).abs() <= OFFSET_TOLERANCE_SECS,
            "{report}"
        );
    }

    // A song of its own shares nothing.
    let report = server
        .get_json(&format!("/api/v1/songs/{}/shared-audio", server.ids[2]))
        .await;
    for list in ["same_audio", "heard_in", "contains"] {
        assert_eq!(report[list], serde_json::json!([]), "{report}");
    }
    expect_error(
        server.get("/api/v1/songs/999999/shared-audio").await,
        404,
        "song_not_found",
    )
    .await;
    expect_error(
        server.get("/api/v1/songs/x7/shared-audio").await,
        400,
        "invalid_id",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_song_is_gone_and_no_longer_matches() {
    let server = TestServer::start().await;
    let id = server.ids[0];
    let clip = clip_of(&library_songs()[0], 7.0, 6.0);
    assert_eq!(
        server.search(clip.clone()).await["matches"][0]["song_id"],
        id
    );

    let response = server
        .client
        .delete(server.url(&format!("/api/v1/songs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());

    let response = server.get(&format!("/api/v1/songs/{id}")).await;
    expect_error(response, 404, "song_not_found").await;
    assert_eq!(server.get_json("/api/v1/songs").await["total"], 2);
    let answer = server.search(clip).await;
    assert_eq!(answer["found"], false, "{answer}");
    assert_eq!(server.get_json("/api/v1/health").await["songs"], 2);

    let response = server
        .client
        .delete(server.url(&format!("/api/v1/songs/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "song_not_found").await;
    let response = server
        .client
        .delete(server.url("/api/v1/songs/nope"))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid_id").await;
    server.stop().await;
}

// ------------------------------------------------------------------------------------------
// Health, stats, metrics, documentation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_ok_and_the_song_count() {
    let server = TestServer::start().await;
    let health = server.get_json("/api/v1/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["songs"], 3);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_metrics_count_searches_and_requests() {
    let server = TestServer::start().await;
    let fresh = server.get_json("/api/v1/stats").await;
    assert_eq!(fresh["songs"], 3, "{fresh}");
    assert_eq!(fresh["queries_served"], 0);
    assert_eq!(fresh["search_latency"]["window"], 0);
    // No searches, no percentiles: null, not a latency of 0 ms.
    assert!(fresh["search_latency"]["p50_ms"].is_null(), "{fresh}");
    assert!(fresh["search_latency"]["max_ms"].is_null(), "{fresh}");
    assert!((fresh["hours"].as_f64().unwrap() - 60.0 / 3600.0).abs() < 1e-3);
    assert!(fresh["hashes"].as_u64().unwrap() > 1000);
    assert!(fresh["peaks"].as_u64().unwrap() > 100);
    assert!(fresh["memory_index_bytes"].as_u64().unwrap() > 0);
    assert!(fresh["bytes_on_disk"].as_u64().unwrap() > 0);
    assert_eq!(fresh["storage"], "sqlite");

    server.search(clip_of(&library_songs()[0], 1.0, 5.0)).await;
    server.search(clip_of(&library_songs()[1], 1.0, 5.0)).await;
    let response = server
        .post_audio("/api/v1/search", Vec::new(), "e.wav", &[])
        .await;
    assert_eq!(response.status(), 400);
    server.get("/api/v1/songs/424242").await;
    server.get("/nowhere").await;

    let stats = server.get_json("/api/v1/stats").await;
    assert_eq!(stats["queries_served"], 2, "{stats}");
    let latency = &stats["search_latency"];
    assert_eq!(latency["window"], 2);
    let (p50, p99) = (
        latency["p50_ms"].as_f64().unwrap(),
        latency["p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p99 >= p50, "{stats}");
    assert!(stats["resident_memory_bytes"].as_u64().unwrap() > 0);

    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for line in [
        "audiofp_http_requests_total{method=\"POST\",route=\"/api/v1/search\",status=\"200\"} 2",
        "audiofp_http_requests_total{method=\"POST\",route=\"/api/v1/search\",status=\"400\"} 1",
        "audiofp_http_requests_total{method=\"GET\",route=\"/api/v1/songs/{id}\",status=\"404\"} 1",
        "audiofp_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "audiofp_http_requests_total{method=\"GET\",route=\"/api/v1/stats\",status=\"200\"} 2",
        "# TYPE audiofp_search_duration_seconds histogram",
        "audiofp_search_duration_seconds_bucket{le=\"+Inf\"} 2",
        "audiofp_search_duration_seconds_count 2",
        "audiofp_searches_total{result=\"match\"} 2",
        "# TYPE audiofp_songs_indexed gauge",
        "audiofp_songs_indexed 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_every_route() {
    let server = TestServer::start().await;
    let response = server.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // The document's version is the server's, as /health reports it.
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    for (path, methods) in [
        ("/api/v1/search", &["post"][..]),
        ("/api/v1/tracklist", &["post"][..]),
        ("/api/v1/songs", &["get", "post"][..]),
        ("/api/v1/songs/{id}", &["get", "delete"][..]),
        ("/api/v1/songs/{id}/shared-audio", &["get"][..]),
        ("/api/v1/stats", &["get"][..]),
        ("/api/v1/health", &["get"][..]),
        ("/api/v1/openapi.json", &["get"][..]),
        ("/metrics", &["get"][..]),
    ] {
        for method in methods {
            let operation = &doc["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} not documented");
            assert!(
                operation["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
    }
    // Every documented error status of the search is there.
    for status in ["200", "400", "413", "415"] {
        assert!(
            doc["paths"]["/api/v1/search"]["post"]["responses"][status].is_object(),
            "search response {status} not documented"
        );
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let target = piece.split('"').next().unwrap();
        let mut node = &doc;
        for part in target.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref #/{target}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = TestServer::start().await;
    let response = server.get("/api/v2/search").await;
    expect_error(response, 404, "not_found").await;
    let response = server.get("/api/v1/search").await;
    expect_error(response, 405, "method_not_allowed").await;
    let response = server
        .client
        .put(server.url("/api/v1/songs/1"))
        .send()
        .await
        .unwrap();
    expect_error(response, 405, "method_not_allowed").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_are_sent_only_when_configured() {
    // No CORS_ORIGINS: no CORS headers.
    let plain = TestServer::start().await;
    let response = plain
        .client
        .get(plain.url("/api/v1/health"))
        .header("origin", "http://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    plain.stop().await;

    let server = TestServer::start_with(ServerSettings {
        cors_origins: vec![
            "http://app.example".to_string(),
            "http://other.example".to_string(),
        ],
        ..ServerSettings::default()
    })
    .await;
    let response = server
        .client
        .get(server.url("/api/v1/health"))
        .header("origin", "http://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    // Not a listed origin.
    let response = server
        .client
        .get(server.url("/api/v1/health"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // Preflight of an upload.
    let response = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/api/v1/search"))
        .header("origin", "http://other.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://other.example"
    );
    let methods = response.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    server.stop().await;
}

// ------------------------------------------------------------------------------------------
// Lifecycle

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish() {
    let mut server = TestServer::start().await;
    let song = &library_songs()[2];
    let boundary = "audiofpShutdownBoundary";
    let body = multipart_body(boundary, "audio", &clip_of(song, 3.0, 6.0));
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Shut down while the upload is half sent.
    server.shutdown.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let task = server.task.take().unwrap();
    assert!(
        !task.is_finished(),
        "server stopped with a request in flight"
    );
    // No new connections are accepted (the listener is closed) ...
    let refused = tokio::time::timeout(Duration::from_secs(2), async {
        match TcpStream::connect(server.addr).await {
            Err(_) => true,
            Ok(mut late) => {
                late.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .ok();
                let mut buf = [0u8; 64];
                matches!(late.read(&mut buf).await, Ok(0) | Err(_))
            }
        }
    })
    .await
    .unwrap_or(true);
    assert!(
        refused,
        "a new connection was served after the shutdown signal"
    );

    // ... but the one in flight is answered.
    stream.write_all(&body[half..]).await.unwrap();
    let (status, answer) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["matches"][0]["song_id"], server.ids[2], "{answer}");

    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("server did not stop after its last request")
        .unwrap()
        .unwrap();
}

/// Kills the child on drop (a failed assertion must not leave a server running).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn serve_command_listens_on_loopback_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    {
        let mut library = Library::open(
            &StorageKind::Sqlite(db.clone()),
            &FingerprintConfig::default(),
            &MatchConfig::default(),
            OpenMode::CreateIfMissing,
        )
        .unwrap();
        let song = &library_songs()[0];
        library.add(&song.meta, &song.fingerprint).unwrap();
    }
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_audiofp"))
            .args(["--db", db.to_str().unwrap(), "serve", "--port", "0"])
            .current_dir(dir.path())
            .env_remove("MAX_CONTENT_LENGTH")
            .env_remove("CORS_ORIGINS")
            .env_remove("STORAGE_TYPE")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.contains("serving 1 songs"), "{banner}");
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{banner}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let health: Value = client
            .get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["songs"], 1);
        // The CLI's default limit: 16 MiB.
        let response = client
            .post(format!("{url}/search"))
            .header("content-type", "multipart/form-data; boundary=x")
            .header("content-length", (16 * 1024 * 1024 + 1).to_string())
            .body("")
            .send()
            .await;
        // The body is shorter than announced; the server answers before reading it.
        if let Ok(response) = response {
            assert_eq!(response.status(), 413);
        }
    });

    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

#[test]
fn serve_binds_loopback_port_5000_unless_told_otherwise() {
    use clap::Parser as _;
    let cli = audiofp::cli::Cli::try_parse_from(["audiofp", "serve"]).unwrap();
    let Some(audiofp::cli::Command::Serve(args)) = cli.command else {
        panic!("not the serve command");
    };
    assert_eq!(args.host, "127.0.0.1");
    assert_eq!(args.port, 5000);
    let cli = audiofp::cli::Cli::try_parse_from([
        "audiofp",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--max-content-length",
        "2M",
        "--cors-origins",
        "http://a.example, http://b.example",
    ])
    .unwrap();
    let Some(audiofp::cli::Command::Serve(args)) = cli.command else {
        panic!("not the serve command");
    };
    assert_eq!(args.host, "0.0.0.0");
    let settings = ServerSettings::from_args(&args);
    assert_eq!(settings.max_content_length, 2 * 1024 * 1024);
    assert_eq!(
        settings.cors_origins,
        ["http://a.example", "http://b.example"]
    );
    // A limit that no upload could meet is a mistake, said at start, not 413 on every request.
    for limit in ["0", "512"] {
        let refused =
            audiofp::cli::Cli::try_parse_from(["audiofp", "serve", "--max-content-length", limit])
                .map(|_| ())
                .unwrap_err()
                .to_string();
        assert!(refused.contains("would refuse every upload"), "{refused}");
    }
    // No engine thread would serve no search.
    let refused = audiofp::cli::Cli::try_parse_from(["audiofp", "serve", "--engine-threads", "0"])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("--engine-threads"), "{refused}");
}

/// `POST /api/v1/tracklist`: a recording of two library songs with unindexed music between
/// them lists the two, in order, with when and from where; a silent one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracklist_names_the_songs_of_a_recording_in_order() {
    let server = TestServer::start().await;
    let songs = library_songs();
    let stranger = synth::song(4_242, 20.0, SR);
    let recording = [
        distort::excerpt(&songs[1].samples, SR, 4.0, 15.0),
        distort::excerpt(&stranger, SR, 2.0, 12.0),
        distort::excerpt(&songs[0].samples, SR, 0.0, 16.0),
    ]
    .concat();
    let response = server
        .post_audio(
            "/api/v1/tracklist",
            wav_bytes(&recording, SR),
            "set.wav",
            &[],
        )
        .await;
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert!(
        (list["recording_seconds"].as_f64().unwrap() - 43.0).abs() < 0.05,
        "{list}"
    );
    assert!(list["windows"].as_u64().unwrap() >= 8, "{list}");
    let entries = list["songs"].as_array().unwrap();
    let ids: Vec<i64> = entries
        .iter()
        .filter_map(|e| e["song_id"].as_i64())
        .collect();
    assert_eq!(ids, [server.ids[1], server.ids[0]], "{list}");
    for (entry, (from, to, song_from)) in entries.iter().zip([(0.0, 15.0, 4.0), (27.0, 43.0, 0.0)])
    {
        let get = |key: &str| entry[key].as_f64().unwrap_or(f64::NAN);
        assert!(
            get("from_seconds") >= from - 0.2 && get("from_seconds") <= from + 1.0,
            "{entry}"
        );
        assert!(
            get("to_seconds") >= to - 2.0 && get("to_seconds") <= to + 1.5,
            "{entry}"
        );
        let place = get("song_from_seconds") - (get("from_seconds") - from);
        assert!((place - song_from).abs() <= 0.2, "{entry}");
        assert!(get("confidence") >= 0.8, "{entry}");
    }

    let silence = vec![0.0f32; 12 * SR as usize];
    let response = server
        .post_audio(
            "/api/v1/tracklist",
            wav_bytes(&silence, SR),
            "quiet.wav",
            &[],
        )
        .await;
    let body = expect_error(response, 400, "silent").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quiet.wav"),
        "{body}"
    );
    let response = server
        .client
        .post(server.url("/api/v1/tracklist"))
        .multipart(Form::new().text("title", "no audio"))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "missing_field").await;
    server.stop().await;
}
