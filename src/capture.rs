//! Microphone capture with cpal, on its own named thread.
//!
//! ```text
//! cpal audio callback ──(mono f32 buffers, try_send, no allocation once warm)──►
//!   thread "audiofp-capture" (owns the cpal Stream: !Send on some hosts)
//!     ├─► AudioChunk ──try_send──► the worker's Listen job
//!     └─► CaptureEvent::{Started, Level (+ live spectrogram columns), Error, Stopped} ──► GUI
//! ```
//!
//! Every failure (no input device, permission denied, the device disappearing, an
//! unsupported format) becomes a [`CaptureEvent::Error`] with a message meant for the user; the
//! thread then ends and drops its chunk sender, which ends the listening job. Nothing panics.
//! A device that stops delivering audio without any error (a suspended or hung source: ALSA
//! just blocks) is caught by a watchdog: no buffer for [`STALL_TIMEOUT`] is an error too
//! (10 s before the first buffer).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select, unbounded};

use crate::config::FingerprintConfig;
use crate::engine::stft::Stft;
use crate::worker::{AudioChunk, Waker};

/// Why the microphone could not be listed or opened; the text is meant for the user.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CaptureError {
    /// The input chosen in Settings is not connected.
    #[error(
        "The input device \u{201c}{0}\u{201d} is not connected. Choose another one in Settings."
    )]
    NotConnected(String),
    /// There is no input device at all.
    #[error("No microphone found. Connect one (or choose an input in Settings) and try again.")]
    NoMicrophone,
    /// The device's samples are of a format audiofp does not convert.
    #[error("The microphone delivers {0} samples, which audiofp cannot read.")]
    SampleFormat(String),
    /// The audio system refused (permission, busy device, ...), described for the user.
    #[error("{0}")]
    Device(String),
}

/// Buffers in flight between the audio callback and the capture thread.
const RAW_QUEUE_LEN: usize = 64;
/// Level and spectrogram updates sent to the GUI at most this often.
const LEVEL_INTERVAL: Duration = Duration::from_millis(40);
/// Columns of the live spectrogram per second.
pub const LIVE_COLUMNS_PER_SEC: u32 = 40;
/// A running stream that delivers no audio for this long has stopped working. Real devices
/// deliver every few milliseconds; an idle PulseAudio null sink's monitor every 2 s.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The watchdog's patience for the first audio: some devices take seconds to start (a
/// Bluetooth headset switching profile, an idle null sink's 2 s blocks).
const FIRST_AUDIO_TIMEOUT: Duration = Duration::from_secs(10);
/// What the user reads when the stream stalls.
const STALLED_MESSAGE: &str = "The microphone stopped sending audio (was it unplugged?). \
     Check the input in Settings and start listening again.";
/// What the user reads when a running stream fails.
const LOST_MESSAGE: &str = "The microphone stopped working (was it unplugged, or did the sound \
     server stop?). Check the input in Settings and start listening again.";
/// Highest frequency of the live spectrogram.
const LIVE_MAX_FREQ_HZ: f32 = 5000.0;
/// Lowest frequency of the live spectrogram.
const LIVE_MIN_FREQ_HZ: f32 = 60.0;
/// Live spectrogram levels map this dB range onto 0..=255.
const LIVE_FLOOR_DB: f32 = -100.0;
/// Top of the live spectrogram's range.
const LIVE_TOP_DB: f32 = -25.0;

/// An input device the user can choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDevice {
    /// Stable id (`host:device`), what the settings store.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Whether it is the system's default input.
    pub is_default: bool,
}

/// What the capture thread reports.
#[derive(Clone, Debug)]
pub enum CaptureEvent {
    /// The stream runs.
    Started {
        /// The device's name.
        device_name: String,
        /// Its sample rate.
        sample_rate_hz: u32,
        /// Its channel count (mixed down to mono).
        channels: u16,
    },
    /// Loudness and live spectrogram since the last such event.
    Level {
        /// RMS level, dB relative to full scale.
        rms_dbfs: f32,
        /// Peak level, 0..=1.
        peak: f32,
        /// New spectrogram columns, oldest first; each has [`CaptureEvent::Level::bins`] levels
        /// (0..=255, low frequencies first).
        columns: Vec<Vec<u8>>,
        /// Bins per column.
        bins: usize,
    },
    /// Capture failed or stopped working; the thread ends.
    Error {
        /// What happened and what to do, for the user.
        message: String,
    },
    /// The stream is closed.
    Stopped {
        /// Buffers lost because a consumer fell behind.
        dropped_buffers: usize,
    },
}

/// A running capture; dropping it stops the capture (without waiting).
pub struct CaptureHandle {
    stop: Option<Sender<()>>,
    events: Receiver<CaptureEvent>,
    thread: Option<JoinHandle<()>>,
}

impl CaptureHandle {
    /// Events so far, without waiting.
    pub fn try_iter(&self) -> crossbeam_channel::TryIter<'_, CaptureEvent> {
        self.events.try_iter()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<CaptureEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Asks the thread to stop (it closes the stream and reports [`CaptureEvent::Stopped`]).
    pub fn stop(&mut self) {
        self.stop = None;
    }

    /// Stops and waits for the thread to end.
    pub fn join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the capture thread panicked");
        }
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        // Not joined: closing a stream can block on some hosts, and the GUI must not wait.
        self.stop();
    }
}

/// Starts capturing from `device_id` (or the default input) into `chunks`.
///
/// Returns at once; opening the device happens on the capture thread, which reports
/// [`CaptureEvent::Started`] or [`CaptureEvent::Error`].
pub fn start(
    device_id: Option<String>,
    chunks: Sender<AudioChunk>,
    waker: Waker,
) -> std::io::Result<CaptureHandle> {
    let (stop_tx, stop_rx) = bounded::<()>(1);
    let (event_tx, event_rx) = unbounded();
    let thread = std::thread::Builder::new()
        .name("audiofp-capture".to_string())
        .spawn(move || {
            let events = EventOut {
                tx: event_tx,
                waker,
            };
            capture_main(device_id.as_deref(), &chunks, &stop_rx, &events);
        })?;
    Ok(CaptureHandle {
        stop: Some(stop_tx),
        events: event_rx,
        thread: Some(thread),
    })
}

/// Lists input devices on a short-lived thread (enumeration can take a while on ALSA); the
/// answer arrives on the returned channel, and `waker` is called.
pub fn list_input_devices_in_background(
    waker: Waker,
) -> std::io::Result<Receiver<Result<Vec<InputDevice>, CaptureError>>> {
    let (tx, rx) = bounded(1);
    std::thread::Builder::new()
        .name("audiofp-devices".to_string())
        .spawn(move || {
            // The GUI may have closed meanwhile.
            tx.send(list_input_devices()).ok();
            waker.wake();
        })?;
    Ok(rx)
}

/// The input devices of the default host.
pub fn list_input_devices() -> Result<Vec<InputDevice>, CaptureError> {
    let host = cpal::default_host();
    let default_id = host
        .default_input_device()
        .and_then(|device| device.id().ok())
        .map(|id| id.to_string());
    let devices = host
        .input_devices()
        .map_err(|err| CaptureError::Device(describe(&err)))?;
    let mut list: Vec<InputDevice> = devices
        .filter_map(|device| {
            let id = device.id().ok()?.to_string();
            let name = device
                .description()
                .map_or_else(|_| id.clone(), |d| d.name().to_string());
            Some(InputDevice {
                is_default: default_id.as_deref() == Some(id.as_str()),
                id,
                name,
            })
        })
        .collect();
    list.sort_by(|a, b| b.is_default.cmp(&a.is_default).then(a.name.cmp(&b.name)));
    list.dedup_by(|a, b| a.id == b.id);
    Ok(list)
}

/// A message for the user about a cpal error while opening the device.
fn describe(err: &cpal::Error) -> String {
    use cpal::ErrorKind;
    match err.kind() {
        ErrorKind::PermissionDenied => "Permission to use the microphone was denied. Allow \
             audiofp to record audio in your system settings, then try again."
            .to_string(),
        ErrorKind::DeviceNotAvailable => {
            "The microphone is not available (was it unplugged?). Connect it, or choose another \
             input in Settings, and try again."
                .to_string()
        }
        ErrorKind::HostUnavailable => {
            "No audio system is running, so there is no microphone to listen with.".to_string()
        }
        ErrorKind::DeviceBusy => {
            "The microphone is busy in another application. Close it and try again.".to_string()
        }
        ErrorKind::UnsupportedConfig | ErrorKind::UnsupportedOperation => {
            format!("This device cannot record audio in a usable format ({err}).")
        }
        _ => format!("The microphone failed: {err}"),
    }
}

/// A message for the user about a cpal error of a running stream, or `None` for a glitch the
/// stream survives (an overrun, a refused real-time priority, a rerouted default device).
///
/// ALSA reports a vanished PulseAudio source or a stopped sound server as a bare I/O error
/// (`BackendError`), whose text means nothing to a user: that and every other failure of a
/// running stream read as "the microphone stopped working".
fn describe_stream_error(err: &cpal::Error) -> Option<String> {
    use cpal::ErrorKind;
    match err.kind() {
        ErrorKind::Xrun | ErrorKind::RealtimeDenied | ErrorKind::DeviceChanged => None,
        ErrorKind::PermissionDenied | ErrorKind::DeviceBusy => Some(describe(err)),
        _ => Some(LOST_MESSAGE.to_string()),
    }
}

struct EventOut {
    tx: Sender<CaptureEvent>,
    waker: Waker,
}

impl EventOut {
    fn send(&self, event: CaptureEvent) {
        // The GUI may be gone; then nobody needs the event.
        self.tx.send(event).ok();
        self.waker.wake();
    }
}

/// The callback's side: where buffers go, and spare buffers to reuse.
struct CallbackIo {
    raw_tx: Sender<Vec<f32>>,
    spare_rx: Receiver<Vec<f32>>,
    dropped: Arc<AtomicUsize>,
    channels: usize,
}

impl CallbackIo {
    fn push<T>(&self, data: &[T])
    where
        T: cpal::Sample,
        f32: cpal::FromSample<T>,
    {
        let mut buffer = self.spare_rx.try_recv().unwrap_or_default();
        buffer.clear();
        let channels = self.channels.max(1);
        let scale = 1.0 / channels as f32;
        buffer.extend(data.chunks(channels).map(|frame| {
            frame
                .iter()
                .map(|&sample| sample.to_sample::<f32>())
                .sum::<f32>()
                * scale
        }));
        if self.raw_tx.try_send(buffer).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct OpenStream {
    stream: cpal::Stream,
    device_name: String,
    sample_rate_hz: u32,
    channels: u16,
}

fn open_stream(
    device_id: Option<&str>,
    io: CallbackIo,
    error_tx: Sender<cpal::Error>,
) -> Result<OpenStream, CaptureError> {
    let host = cpal::default_host();
    let device = match device_id {
        Some(id) => {
            let wanted = id.parse::<cpal::DeviceId>().ok();
            wanted
                .and_then(|wanted| host.device_by_id(&wanted))
                .ok_or_else(|| CaptureError::NotConnected(id.to_string()))?
        }
        None => host
            .default_input_device()
            .ok_or(CaptureError::NoMicrophone)?,
    };
    let device_name = device
        .description()
        .map(|d| d.name().to_string())
        .or_else(|_| device.id().map(|id| id.to_string()))
        .unwrap_or_else(|_| "microphone".to_string());
    let supported = device
        .default_input_config()
        .map_err(|err| CaptureError::Device(describe(&err)))?;
    let sample_rate_hz = supported.sample_rate();
    let channels = supported.channels();
    let config = supported.config();
    let io = CallbackIo {
        channels: usize::from(channels),
        ..io
    };
    let on_error = move |err: cpal::Error| {
        // A full queue means the thread already has errors to report.
        error_tx.try_send(err).ok();
    };
    use cpal::SampleFormat as F;
    let built = match supported.sample_format() {
        F::F32 => device.build_input_stream(
            config,
            move |data: &[f32], _: &_| io.push(data),
            on_error,
            None,
        ),
        F::I16 => device.build_input_stream(
            config,
            move |data: &[i16], _: &_| io.push(data),
            on_error,
            None,
        ),
        F::I32 => device.build_input_stream(
            config,
            move |data: &[i32], _: &_| io.push(data),
            on_error,
            None,
        ),
        F::U16 => device.build_input_stream(
            config,
            move |data: &[u16], _: &_| io.push(data),
            on_error,
            None,
        ),
        F::U8 => device.build_input_stream(
            config,
            move |data: &[u8], _: &_| io.push(data),
            on_error,
            None,
        ),
        F::I8 => device.build_input_stream(
            config,
            move |data: &[i8], _: &_| io.push(data),
            on_error,
            None,
        ),
        F::F64 => device.build_input_stream(
            config,
            move |data: &[f64], _: &_| io.push(data),
            on_error,
            None,
        ),
        other => {
            return Err(CaptureError::SampleFormat(other.to_string()));
        }
    };
    let stream = built.map_err(|err| CaptureError::Device(describe(&err)))?;
    stream
        .play()
        .map_err(|err| CaptureError::Device(describe(&err)))?;
    Ok(OpenStream {
        stream,
        device_name,
        sample_rate_hz,
        channels,
    })
}

fn capture_main(
    device_id: Option<&str>,
    chunks: &Sender<AudioChunk>,
    stop_rx: &Receiver<()>,
    events: &EventOut,
) {
    let (raw_tx, raw_rx) = bounded::<Vec<f32>>(RAW_QUEUE_LEN);
    let (spare_tx, spare_rx) = bounded::<Vec<f32>>(RAW_QUEUE_LEN);
    let (error_tx, error_rx) = bounded::<cpal::Error>(16);
    let dropped = Arc::new(AtomicUsize::new(0));
    let io = CallbackIo {
        raw_tx,
        spare_rx,
        dropped: Arc::clone(&dropped),
        channels: 1,
    };
    let opened = match open_stream(device_id, io, error_tx) {
        Ok(opened) => opened,
        Err(err) => {
            events.send(CaptureEvent::Error {
                message: err.to_string(),
            });
            events.send(CaptureEvent::Stopped { dropped_buffers: 0 });
            return;
        }
    };
    let sample_rate_hz = opened.sample_rate_hz;
    events.send(CaptureEvent::Started {
        device_name: opened.device_name.clone(),
        sample_rate_hz,
        channels: opened.channels,
    });
    let mut live = LiveSpectrum::new(sample_rate_hz);
    let mut meter = LevelMeter::default();
    let mut last_sent = Instant::now();
    let mut watchdog = Watchdog::new();
    loop {
        select! {
            recv(stop_rx) -> _ => break,
            recv(raw_rx) -> buffer => {
                let Ok(buffer) = buffer else { break };
                watchdog.fed();
                meter.push(&buffer);
                live.push(&buffer);
                let chunk = AudioChunk { samples: buffer.clone(), sample_rate_hz };
                match chunks.try_send(chunk) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    // The listening job ended: nobody needs more audio.
                    Err(TrySendError::Disconnected(_)) => break,
                }
                // The callback allocates a new buffer if this one is not back in time.
                spare_tx.try_send(buffer).ok();
            },
            recv(error_rx) -> err => {
                let Ok(err) = err else { break };
                match describe_stream_error(&err) {
                    None => tracing::debug!("capture: {err}"),
                    Some(message) => {
                        tracing::warn!("capture failed: {err} ({:?})", err.kind());
                        events.send(CaptureEvent::Error { message });
                        break;
                    }
                }
            },
            default(LEVEL_INTERVAL) => {},
        }
        if watchdog.stalled() {
            tracing::warn!("capture: no audio for {:?}", watchdog.since.elapsed());
            events.send(CaptureEvent::Error {
                message: STALLED_MESSAGE.to_string(),
            });
            break;
        }
        if last_sent.elapsed() >= LEVEL_INTERVAL {
            last_sent = Instant::now();
            let columns = live.take_columns();
            if let Some((rms_dbfs, peak)) = meter.take() {
                events.send(CaptureEvent::Level {
                    rms_dbfs,
                    peak,
                    columns,
                    bins: live.bins(),
                });
            }
        }
    }
    drop(opened.stream);
    events.send(CaptureEvent::Stopped {
        dropped_buffers: dropped.load(Ordering::Relaxed),
    });
}

/// Notices a stream that stopped delivering audio without reporting an error (ALSA blocks
/// on a suspended or hung source).
struct Watchdog {
    /// The last audio, or the start.
    since: Instant,
    heard: bool,
}

impl Watchdog {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            heard: false,
        }
    }

    /// Audio arrived.
    fn fed(&mut self) {
        self.since = Instant::now();
        self.heard = true;
    }

    /// Whether the stream has been silent (no buffers at all) for too long.
    fn stalled(&self) -> bool {
        let limit = if self.heard {
            STALL_TIMEOUT
        } else {
            FIRST_AUDIO_TIMEOUT
        };
        self.since.elapsed() >= limit
    }
}

/// RMS and peak since the last report.
#[derive(Default)]
struct LevelMeter {
    sum_squares: f64,
    count: usize,
    peak: f32,
}

impl LevelMeter {
    fn push(&mut self, samples: &[f32]) {
        for &sample in samples {
            self.sum_squares += f64::from(sample) * f64::from(sample);
            self.peak = self.peak.max(sample.abs());
        }
        self.count += samples.len();
    }

    fn take(&mut self) -> Option<(f32, f32)> {
        if self.count == 0 {
            return None;
        }
        let rms = (self.sum_squares / self.count as f64).sqrt();
        let rms_dbfs = (20.0 * rms.max(1e-7).log10()) as f32;
        let peak = self.peak.min(1.0);
        *self = Self::default();
        Some((rms_dbfs, peak))
    }
}

/// The scrolling spectrogram of what is heard: an STFT at the device's rate.
pub struct LiveSpectrum {
    stft: Stft,
    bins: usize,
    columns: Vec<Vec<u8>>,
}

impl LiveSpectrum {
    /// A spectrogram for audio at `sample_rate_hz` ([`LIVE_COLUMNS_PER_SEC`] columns a second,
    /// 60 Hz to 5 kHz).
    pub fn new(sample_rate_hz: u32) -> Self {
        let rate = sample_rate_hz.max(8000);
        let n_fft = ((rate / 24) as usize).next_power_of_two().clamp(256, 4096);
        let config = FingerprintConfig {
            sample_rate_hz: rate,
            n_fft,
            hop_length: ((rate / LIVE_COLUMNS_PER_SEC) as usize).clamp(1, n_fft),
            min_freq_hz: LIVE_MIN_FREQ_HZ,
            max_freq_hz: LIVE_MAX_FREQ_HZ.min(rate as f32 / 2.0 - 1.0),
            ..FingerprintConfig::default()
        };
        Self {
            stft: Stft::new(&config),
            bins: config.band_bins(),
            columns: Vec::new(),
        }
    }

    /// Bins per column.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Feeds mono samples.
    pub fn push(&mut self, samples: &[f32]) {
        let columns = &mut self.columns;
        self.stft.push(samples, |frame| {
            columns.push(
                frame
                    .iter()
                    .map(|&db| {
                        ((db - LIVE_FLOOR_DB) / (LIVE_TOP_DB - LIVE_FLOOR_DB) * 255.0)
                            .clamp(0.0, 255.0) as u8
                    })
                    .collect(),
            );
        });
    }

    /// The columns completed since the last call.
    pub fn take_columns(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.columns)
    }
}

#[cfg(test)]
mod tests {
    use cpal::ErrorKind;

    use super::*;

    fn error(kind: ErrorKind) -> cpal::Error {
        cpal::Error::new(kind)
    }

    #[test]
    fn opening_errors_say_what_to_do() {
        let permission = describe(&error(ErrorKind::PermissionDenied));
        assert!(permission.contains("Permission"), "{permission}");
        assert!(permission.contains("system settings"), "{permission}");
        let gone = describe(&error(ErrorKind::DeviceNotAvailable));
        assert!(gone.contains("not available"), "{gone}");
        assert!(gone.contains("Settings"), "{gone}");
        let busy = describe(&error(ErrorKind::DeviceBusy));
        assert!(busy.contains("busy in another application"), "{busy}");
        let no_server = describe(&error(ErrorKind::HostUnavailable));
        assert!(no_server.contains("No audio system"), "{no_server}");
        let format = describe(&cpal::Error::with_message(
            ErrorKind::UnsupportedConfig,
            "48000 Hz",
        ));
        assert!(format.contains("usable format (48000 Hz)"), "{format}");
        let other = describe(&cpal::Error::with_message(
            ErrorKind::BackendError,
            "snd_pcm_open failed",
        ));
        assert!(other.contains("snd_pcm_open failed"), "{other}");
    }

    #[test]
    fn a_failing_stream_reads_as_a_lost_microphone() {
        // ALSA reports a vanished PulseAudio source or a killed server as EIO: BackendError.
        for kind in [
            ErrorKind::BackendError,
            ErrorKind::DeviceNotAvailable,
            ErrorKind::StreamInvalidated,
            ErrorKind::HostUnavailable,
            ErrorKind::Other,
        ] {
            let message = describe_stream_error(&cpal::Error::with_message(
                kind,
                "ALSA function 'snd_pcm_readi' failed with error 'EIO: I/O error'",
            ));
            assert_eq!(message.as_deref(), Some(LOST_MESSAGE), "{kind:?}");
        }
        let denied = describe_stream_error(&error(ErrorKind::PermissionDenied));
        assert_eq!(denied, Some(describe(&error(ErrorKind::PermissionDenied))));
        let busy = describe_stream_error(&error(ErrorKind::DeviceBusy));
        assert_eq!(busy, Some(describe(&error(ErrorKind::DeviceBusy))));
    }

    #[test]
    fn the_watchdog_waits_longer_for_the_first_audio() {
        let quiet_for = |secs: Duration, heard: bool| Watchdog {
            since: Instant::now().checked_sub(secs).unwrap(),
            heard,
        };
        let a_bit = Duration::from_millis(500);
        assert!(!quiet_for(STALL_TIMEOUT + a_bit, false).stalled());
        assert!(quiet_for(FIRST_AUDIO_TIMEOUT + a_bit, false).stalled());
        assert!(!quiet_for(STALL_TIMEOUT - a_bit, true).stalled());
        let mut running = quiet_for(STALL_TIMEOUT + a_bit, true);
        assert!(running.stalled());
        running.fed();
        assert!(!running.stalled());
    }

    #[test]
    fn glitches_do_not_end_the_recording() {
        for kind in [
            ErrorKind::Xrun,
            ErrorKind::RealtimeDenied,
            ErrorKind::DeviceChanged,
        ] {
            assert_eq!(describe_stream_error(&error(kind)), None, "{kind:?}");
        }
    }
}
