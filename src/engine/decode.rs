//! Decoding with symphonia: any supported container/codec to mono `f32` chunks.
//!
//! Input: a file path (the extension is only a hint; the content decides) or an in-memory byte
//! buffer. Output: a stream of mono chunks at the file's native sample rate, handed to a callback
//! one packet at a time, so a two-hour file never sits in memory. Channels are averaged.
//!
//! Damaged packets are skipped and counted, as Symphonia's own players do; a stream in which
//! nothing decodes, or that ends well before the length its header announces, is an error.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTag};
use symphonia::core::units::Time;

use super::EngineError;
use crate::cancel::CancelToken;

/// Tags read from the file, when it has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags {
    /// Track title.
    pub title: Option<String>,
    /// Track artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
}

/// What decoding found out about the stream.
#[derive(Clone, Debug, Default)]
pub struct DecodeSummary {
    /// Native sample rate of the audio track.
    pub sample_rate_hz: u32,
    /// Number of channels of the audio track.
    pub channels: usize,
    /// Frames (samples per channel) decoded.
    pub frames_decoded: u64,
    /// Seconds decoded (the links of a chained stream may differ in rate).
    secs_decoded: f64,
    /// Packets that failed to decode and were skipped.
    pub bad_packets: u64,
    /// Tags from the container.
    pub tags: Tags,
}

impl DecodeSummary {
    /// Decoded duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.secs_decoded
    }
}

/// Where the audio comes from.
pub enum AudioSource<'a> {
    /// A file on disk.
    File(&'a Path),
    /// Bytes in memory (an upload), with an optional file-name hint for the format.
    Bytes {
        /// The encoded audio.
        bytes: Vec<u8>,
        /// A name used in messages and, by its extension, as a format hint.
        name: &'a str,
    },
}

impl AudioSource<'_> {
    /// The file's path, or the name an upload was given.
    pub fn display_path(&self) -> PathBuf {
        match self {
            AudioSource::File(path) => path.to_path_buf(),
            AudioSource::Bytes { name, .. } => PathBuf::from(name),
        }
    }
}

/// A stream that breaks off mid-packet before this many seconds is refused as truncated.
const MIN_SECS_OF_BROKEN_STREAM: f64 = 30.0;

/// Sample rates a file may declare: telephone audio (8 kHz) and below, up to the 768 kHz of
/// the fastest studio converters. Anything else is a damaged header.
pub const SAMPLE_RATES_HZ: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// Decoded audio is handed on in blocks of at least this many mono samples (0.37 s at
/// 44.1 kHz), not packet by packet (a few hundred to a few thousand samples): the analysis
/// then runs on longer stretches between packets decoded, with its tables and buffers still
/// in cache. Indexing spent about 7 % less time in the analysis (docs/BENCHMARK.md,
/// "Indexing speed").
pub const MONO_BLOCK_SAMPLES: usize = 16_384;

/// Receives each decoded chunk: mono samples and their sample rate.
type ChunkSink<'a> = dyn FnMut(&[f32], u32) -> Result<(), EngineError> + 'a;

/// What a stream that ends before it should (a header promising more, or a break
/// mid-packet) means to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutStreams {
    /// An error: a cut copy of a song must not be indexed as the song. A damaged tail on a
    /// stream of [`MIN_SECS_OF_BROKEN_STREAM`] or more without a stated length is still
    /// taken, with a warning.
    Refuse,
    /// Use what decoded: every second of a clip to identify is evidence, and a clip cut
    /// from a longer file or sent half-uploaded is still worth matching.
    Accept,
}

/// Decodes `source` and calls `on_chunk(mono_samples, sample_rate_hz)` for each block of
/// decoded audio: whole packets adding up to at least [`MONO_BLOCK_SAMPLES`], fewer at the end
/// and where the sample rate changes.
pub fn decode_mono(
    source: AudioSource<'_>,
    cut_streams: CutStreams,
    cancel: &CancelToken,
    mut on_chunk: impl FnMut(&[f32], u32) -> Result<(), EngineError>,
) -> Result<DecodeSummary, EngineError> {
    let path = source.display_path();
    let media: Box<dyn MediaSource> = match source {
        AudioSource::File(file_path) => {
            let file = File::open(file_path).map_err(|source| EngineError::Io {
                path: path.clone(),
                source,
            })?;
            let metadata = file.metadata().map_err(|source| EngineError::Io {
                path: path.clone(),
                source,
            })?;
            if metadata.is_dir() {
                return Err(EngineError::Io {
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::IsADirectory,
                        "it is a folder, not an audio file",
                    ),
                });
            }
            let len = metadata.len();
            if len == 0 {
                return Err(EngineError::EmptyFile { path });
            }
            Box::new(file)
        }
        AudioSource::Bytes { bytes, .. } => {
            if bytes.is_empty() {
                return Err(EngineError::EmptyFile { path });
            }
            Box::new(Cursor::new(bytes))
        }
    };
    let mut format = open_format(media, &path)?;
    decode_track(format.as_mut(), &path, cut_streams, cancel, &mut on_chunk)
}

/// The format reader for `media`, the file or bytes named `path` (whose extension is a hint).
fn open_format(
    media: Box<dyn MediaSource>,
    path: &Path,
) -> Result<Box<dyn FormatReader>, EngineError> {
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(media, Default::default());
    symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|err| unsupported(path, &err))
}

/// Appends the mono mix of `interleaved` frames of `channels` channels to `mono`.
fn mix_to_mono(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    if channels == 1 {
        mono.extend_from_slice(interleaved);
    } else if channels == 2 {
        // The common case, written so that it vectorises.
        mono.extend(
            interleaved
                .chunks_exact(2)
                .map(|frame| (frame[0] + frame[1]) * 0.5),
        );
    } else {
        let scale = 1.0 / channels as f32;
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
    }
}

/// A stretch of a file's audio, mono at the file's rate ([`decode_excerpt`]).
#[derive(Clone, Debug)]
pub struct Excerpt {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Their sample rate.
    pub sample_rate_hz: u32,
    /// Where the first sample lies in the file, seconds.
    pub start_secs: f64,
}

/// Decodes about `secs` seconds of the file at `path` from `from_secs` on (fewer at its end),
/// seeking rather than decoding what comes before. The excerpt may start a little earlier
/// than asked where the format cannot seek to the sample; `start_secs` says where.
pub fn decode_excerpt(path: &Path, from_secs: f64, secs: f64) -> Result<Excerpt, EngineError> {
    let corrupt = |err: &SymphoniaError| EngineError::Corrupt {
        path: path.to_path_buf(),
        reason: describe(err),
    };
    let file = File::open(path).map_err(|source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut format = open_format(Box::new(file), path)?;
    let AudioTrack {
        track_id,
        mut decoder,
        ..
    } = open_audio_track(format.as_ref(), path)?;
    let time_base = format
        .tracks()
        .iter()
        .find(|track| track.id == track_id)
        .and_then(|track| track.time_base);
    let seek_to = Time::try_from_secs_f64(from_secs.max(0.0)).unwrap_or(Time::ZERO);
    if from_secs > 0.0 {
        format
            .seek(
                SeekMode::Accurate,
                SeekTo::Time {
                    time: seek_to,
                    track_id: Some(track_id),
                },
            )
            .map_err(|err| corrupt(&err))?;
        decoder.reset();
    }
    let mut excerpt = Excerpt {
        samples: Vec::new(),
        sample_rate_hz: 0,
        start_secs: 0.0,
    };
    let mut interleaved: Vec<f32> = Vec::new();
    let mut wanted = usize::MAX;
    while excerpt.samples.len() < wanted {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(err))
                if err.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break;
            }
            Err(err) => return Err(corrupt(&err)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::IoError(_) | SymphoniaError::DecodeError(_)) => continue,
            Err(err) => return Err(corrupt(&err)),
        };
        let frames = decoded.frames();
        let rate = decoded.spec().rate();
        if frames == 0 || !SAMPLE_RATES_HZ.contains(&rate) {
            continue;
        }
        if excerpt.sample_rate_hz == 0 {
            // Everything from here on follows the first packet without a gap.
            let packet_secs = time_base
                .and_then(|base| base.calc_time(packet.pts))
                .map_or(from_secs, |time| time.as_nanos() as f64 / 1e9);
            excerpt.sample_rate_hz = rate;
            excerpt.start_secs = packet_secs;
            wanted =
                ((from_secs - packet_secs).max(0.0) + secs).mul_add(f64::from(rate), 0.5) as usize;
        } else if rate != excerpt.sample_rate_hz {
            break;
        }
        let channels = decoded.spec().channels().count().max(1);
        interleaved.resize(frames * channels, 0.0);
        decoded.copy_to_slice_interleaved(&mut interleaved[..]);
        mix_to_mono(&interleaved, channels, &mut excerpt.samples);
    }
    if excerpt.samples.is_empty() {
        return Err(EngineError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("no audio decodes from {from_secs:.1} s on"),
        });
    }
    excerpt.samples.truncate(wanted);
    Ok(excerpt)
}

/// Audio formats the decoders cannot read, by file extension, with their names: a folder
/// walk picks these files up so that they are reported instead of passed over in silence.
const UNDECODABLE_AUDIO: &[(&str, &str)] = &[
    ("opus", "Opus"),
    ("wma", "Windows Media Audio"),
    ("ape", "Monkey's Audio"),
    ("wv", "WavPack"),
    ("mpc", "Musepack"),
    ("dsf", "DSD"),
    ("dff", "DSD"),
    ("tta", "TTA"),
    ("amr", "AMR"),
    ("ra", "RealAudio"),
];

/// The name of the undecodable audio format `path`'s extension stands for, if it is one.
pub fn undecodable_format_name(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    UNDECODABLE_AUDIO
        .iter()
        .find(|(known, _)| *known == ext)
        .map(|(_, name)| *name)
}

/// The error for a file no format reader or decoder accepts; for a known format that is not
/// decoded, it says so by name.
fn unsupported(path: &Path, err: &SymphoniaError) -> EngineError {
    let reason = match undecodable_format_name(path) {
        Some(name) => not_decoded(name),
        None => describe(err),
    };
    EngineError::Unsupported {
        path: path.to_path_buf(),
        reason,
    }
}

/// What the decoders read, for messages about what they do not.
const READABLE_FORMATS: &str = "WAV, AIFF, CAF, FLAC, MP3, MP2, Ogg Vorbis, AAC and Apple Lossless in M4A/MP4, and \
     these codecs in MKV/WebM";

fn not_decoded(format_name: &str) -> String {
    // "Windows Media Audio audio" reads badly: the word only when the name lacks it.
    let what = if format_name.to_ascii_lowercase().contains("audio") {
        format_name.to_string()
    } else {
        format!("{format_name} audio")
    };
    format!(
        "{what} is not decoded; audiofp reads {READABLE_FORMATS}: convert the file to one of these"
    )
}

/// The name of a codec the decoders do not read, for the ones found in common files (the
/// audio of videos, mostly).
fn codec_name(codec: AudioCodecId) -> Option<&'static str> {
    use symphonia::core::codecs::audio::well_known as id;
    Some(match codec {
        id::CODEC_ID_OPUS => "Opus",
        id::CODEC_ID_AC3 => "AC-3 (Dolby Digital)",
        id::CODEC_ID_EAC3 => "E-AC-3 (Dolby Digital Plus)",
        id::CODEC_ID_AC4 => "AC-4",
        id::CODEC_ID_DCA => "DTS",
        id::CODEC_ID_TRUEHD => "Dolby TrueHD",
        id::CODEC_ID_WMA => "Windows Media Audio",
        id::CODEC_ID_SPEEX => "Speex",
        id::CODEC_ID_WAVPACK => "WavPack",
        id::CODEC_ID_MONKEYS_AUDIO => "Monkey's Audio",
        id::CODEC_ID_TTA => "TTA",
        id::CODEC_ID_MUSEPACK => "Musepack",
        _ => return None,
    })
}

fn describe(err: &SymphoniaError) -> String {
    match err {
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "unexpected end of file".to_string()
        }
        // The probe found no container it knows: say so without the decoder's own wording.
        SymphoniaError::Unsupported(what) if what.contains("probe") => {
            format!("no decoder recognises its contents; audiofp reads {READABLE_FORMATS}")
        }
        SymphoniaError::Unsupported(what) => format!("unsupported: {what}"),
        other => other.to_string(),
    }
}

fn decode_track(
    format: &mut dyn FormatReader,
    path: &Path,
    cut_streams: CutStreams,
    cancel: &CancelToken,
    on_chunk: &mut ChunkSink<'_>,
) -> Result<DecodeSummary, EngineError> {
    let mut tags = Tags::default();
    if let Some(revision) = format.metadata().skip_to_latest() {
        read_tags(revision, &mut tags);
    }
    let AudioTrack {
        mut track_id,
        mut expected_frames,
        mut decoder,
    } = open_audio_track(format, path)?;

    let mut summary = DecodeSummary::default();
    let mut resets_in_a_row = 0;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::with_capacity(MONO_BLOCK_SAMPLES + 8192);
    let mut mono_rate = 0;
    let mut good_packets: u64 = 0;
    let mut hit_end_early = None;
    loop {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::ResetRequired) => {
                // The next link of a chained stream (Ogg files joined end to end, stream
                // recordings): a new track, maybe at another rate. Its audio follows on.
                resets_in_a_row += 1;
                if resets_in_a_row > MAX_RESETS_IN_A_ROW {
                    break;
                }
                let next = open_audio_track(format, path)?;
                track_id = next.track_id;
                expected_frames = expected_frames
                    .zip(next.expected_frames)
                    .map(|(so_far, more)| so_far.saturating_add(more));
                decoder = next.decoder;
                continue;
            }
            Err(SymphoniaError::IoError(err))
                if err.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                hit_end_early = Some("unexpected end of file".to_string());
                break;
            }
            Err(err) => {
                if good_packets == 0 {
                    return Err(EngineError::Corrupt {
                        path: path.to_path_buf(),
                        reason: describe(&err),
                    });
                }
                hit_end_early = Some(describe(&err));
                break;
            }
        };
        if !format.metadata().is_latest()
            && let Some(revision) = format.metadata().skip_to_latest()
        {
            read_tags(revision, &mut tags);
        }
        if packet.track_id != track_id {
            continue;
        }
        resets_in_a_row = 0;
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::IoError(_) | SymphoniaError::DecodeError(_)) => {
                summary.bad_packets += 1;
                if good_packets == 0 && summary.bad_packets >= 64 {
                    return Err(EngineError::Corrupt {
                        path: path.to_path_buf(),
                        reason: "no packet decodes".to_string(),
                    });
                }
                continue;
            }
            Err(err) => {
                return Err(EngineError::Corrupt {
                    path: path.to_path_buf(),
                    reason: describe(&err),
                });
            }
        };
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let rate = decoded.spec().rate();
        let channels = decoded.spec().channels().count().max(1);
        if !SAMPLE_RATES_HZ.contains(&rate) {
            // A damaged or crafted header: resampling from a rate like 4,294,967,291 Hz would
            // plan a filter of billions of taps.
            return Err(EngineError::BadFormat {
                source_name: path.display().to_string(),
                reason: format!(
                    "sample rate {rate} Hz is outside {}..={} Hz",
                    SAMPLE_RATES_HZ.start(),
                    SAMPLE_RATES_HZ.end()
                ),
            });
        }
        summary.sample_rate_hz = rate;
        summary.channels = channels;
        interleaved.resize(frames * channels, 0.0);
        decoded.copy_to_slice_interleaved(&mut interleaved[..]);
        if rate != mono_rate && !mono.is_empty() {
            on_chunk(&mono, mono_rate)?;
            mono.clear();
        }
        mono_rate = rate;
        mix_to_mono(&interleaved, channels, &mut mono);
        good_packets += 1;
        summary.frames_decoded += frames as u64;
        summary.secs_decoded += frames as f64 / f64::from(rate);
        if mono.len() >= MONO_BLOCK_SAMPLES {
            on_chunk(&mono, rate)?;
            mono.clear();
        }
    }
    if !mono.is_empty() {
        on_chunk(&mono, mono_rate)?;
    }
    summary.tags = tags;
    if good_packets == 0 {
        return Err(EngineError::Corrupt {
            path: path.to_path_buf(),
            reason: hit_end_early.unwrap_or_else(|| "no audio could be decoded".to_string()),
        });
    }
    // PCM in WAV or AIFF with no length in its header (written to a pipe: the size fields
    // hold 0xFFFFFFFF) is read to the end of the file, and the end of the file is its end.
    let open_ended_pcm =
        expected_frames.is_none() && matches!(format.format_info().short_name, "wave" | "aiff");
    if open_ended_pcm {
        hit_end_early = None;
    }
    let cut = cut_stream(expected_frames, hit_end_early, &summary, path);
    match (cut, cut_streams) {
        (None, _) => Ok(summary),
        (Some(err), CutStreams::Accept) => {
            tracing::info!(
                "{err}; using the {:.1} s that decoded",
                summary.duration_secs()
            );
            Ok(summary)
        }
        (Some(err), CutStreams::Refuse) => Err(err),
    }
}

/// Whether the stream ended before it should, as the error to report: a header that
/// promises much more audio than the stream holds, or (with no length in the header) a
/// break mid-packet in a stream too short for a damaged tail to be the likelier story.
fn cut_stream(
    expected_frames: Option<u64>,
    hit_end_early: Option<String>,
    summary: &DecodeSummary,
    path: &Path,
) -> Option<EngineError> {
    if let Some(expected) = expected_frames {
        let slack = u64::from(summary.sample_rate_hz / 2).max(4096);
        if expected > summary.frames_decoded.saturating_add(slack)
            && summary.frames_decoded < expected / 100 * 98
        {
            let rate = f64::from(summary.sample_rate_hz.max(1));
            if summary.bad_packets > 0 {
                return Some(EngineError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!(
                        "{} damaged packets; decoded {:.1} s of the {:.1} s the header announces",
                        summary.bad_packets,
                        summary.duration_secs(),
                        expected as f64 / rate
                    ),
                });
            }
            return Some(EngineError::Truncated {
                path: path.to_path_buf(),
                decoded_secs: summary.duration_secs(),
                expected_secs: expected as f64 / rate,
            });
        }
    } else if let Some(reason) = hit_end_early {
        // The stream breaks off mid-packet and no header says how long it should be. A damaged
        // tail on a full-length song is common and the song is still worth indexing; a short
        // fragment is most likely a cut copy and is refused.
        if summary.duration_secs() < MIN_SECS_OF_BROKEN_STREAM {
            return Some(EngineError::CutShort {
                path: path.to_path_buf(),
                decoded_secs: summary.duration_secs(),
                reason,
            });
        }
        tracing::warn!(
            "{}: the stream breaks off after {:.1} s ({reason}); using what decoded",
            path.display(),
            summary.duration_secs()
        );
    }
    None
}

/// Resets without a packet in between after which the stream is taken to have ended.
const MAX_RESETS_IN_A_ROW: usize = 8;

/// The audio track being decoded.
struct AudioTrack {
    track_id: u32,
    /// Frames the container announces for the track, when it does.
    expected_frames: Option<u64>,
    decoder: Box<dyn AudioDecoder>,
}

/// Picks the default audio track of `format` and makes its decoder.
fn open_audio_track(format: &dyn FormatReader, path: &Path) -> Result<AudioTrack, EngineError> {
    let no_audio = || EngineError::NoAudioTrack {
        path: path.to_path_buf(),
    };
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(no_audio)?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(no_audio)?;
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|err| match codec_name(params.codec) {
            // A container that is read (Matroska, MP4, Ogg) around a codec that is not.
            Some(name) => EngineError::Unsupported {
                path: path.to_path_buf(),
                reason: not_decoded(name),
            },
            None => unsupported(path, &err),
        })?;
    Ok(AudioTrack {
        track_id: track.id,
        expected_frames: track.num_frames,
        decoder,
    })
}

fn read_tags(revision: &MetadataRevision, tags: &mut Tags) {
    let all = revision.media.tags.iter().chain(
        revision
            .per_track
            .iter()
            .flat_map(|t| t.metadata.tags.iter()),
    );
    for tag in all {
        let Some(std) = &tag.std else { continue };
        let (slot, value) = match std {
            StandardTag::TrackTitle(v) => (&mut tags.title, v),
            StandardTag::Artist(v) => (&mut tags.artist, v),
            StandardTag::Album(v) => (&mut tags.album, v),
            _ => continue,
        };
        let value = value.trim();
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value.to_string());
        }
    }
}
