//! A song's page ([`Request::LoadSongDetail`](super::Request::LoadSongDetail)): its stored
//! fingerprint peaks, the spectrogram of its audio file, decoded through the analysis front
//! end, pooled in time for long songs and coloured into texture tiles, and the other songs
//! that share its audio.

use std::path::Path;

use super::Desk;
use super::protocol::{Event, SPECTROGRAM_TILE_FRAMES, SharedAudioLink, SongDetail, SongRow};
use crate::cancel::CancelToken;
use crate::config::FingerprintConfig;
use crate::engine::front_end::FrontEnd;
use crate::engine::{self, AudioSource, EngineError};
use crate::library::Library;

/// The song-detail spectrogram is pooled in time beyond this many frames (about 9 minutes).
const MAX_DETAIL_FRAMES: usize = 8 * SPECTROGRAM_TILE_FRAMES;
/// Spectrogram levels are stored as u8 steps of this many dB, from [`LEVEL_FLOOR_DB`].
const LEVEL_STEP_DB: f32 = 0.5;
/// The lowest level the song-detail spectrogram keeps.
const LEVEL_FLOOR_DB: f32 = -127.0;
/// Dynamic range shown in the song-detail spectrogram.
const DISPLAY_RANGE_DB: f32 = 60.0;

impl Desk {
    pub(super) fn load_detail(
        &self,
        library: &Library,
        song_id: i64,
        expected_content: Option<&str>,
    ) {
        let failed = |reason: String, gone: bool| Event::SongDetailFailed {
            song_id,
            reason,
            gone,
        };
        let fetched = {
            let store = library.store();
            store
                .song(song_id)
                .and_then(|song| Ok((song, store.peaks(song_id)?)))
        };
        let (song, peaks) = match fetched {
            Ok((Some(song), peaks))
                if expected_content.is_none_or(|hash| hash == song.content_hash) =>
            {
                (song, peaks.unwrap_or_default())
            }
            Ok(_) => {
                self.sink.send(failed(
                    "This song is no longer in the library.".to_string(),
                    true,
                ));
                return;
            }
            Err(err) => {
                self.sink.send(failed(err.to_string(), false));
                return;
            }
        };
        let config = library.config();
        let mut detail = SongDetail {
            song: SongRow::from(&song),
            content_hash: song.content_hash.clone(),
            tiles: Vec::new(),
            tile_frames: SPECTROGRAM_TILE_FRAMES,
            num_frames: song.num_frames as usize,
            peaks,
            frame_secs: config.frame_secs(),
            peak_frame_secs: config.frame_secs(),
            band_start_hz: config.first_bin() as f64 * f64::from(config.bin_hz()),
            bin_hz: f64::from(config.bin_hz()),
            band_bins: config.band_bins(),
            note: None,
            shared_audio: shared_audio_links(library, song_id),
        };
        match song.path.as_deref().map(crate::paths::from_stored) {
            Some(path) if path.is_file() => {
                match spectrogram_levels(&path, config, &self.shutdown) {
                    Ok(levels) => {
                        let pooled = pool_frames(&levels, config.band_bins());
                        detail.frame_secs = config.frame_secs() * pooled.factor as f64;
                        detail.num_frames = pooled.frames;
                        detail.tiles = spectrogram_tiles(&pooled.levels, config.band_bins());
                    }
                    Err(err) => {
                        detail.note = Some(format!(
                            "The audio could not be decoded ({err}); showing the stored fingerprint peaks only."
                        ));
                    }
                }
            }
            Some(path) => {
                detail.note = Some(format!(
                    "The audio file is no longer at {}; showing the stored fingerprint peaks only.",
                    path.display()
                ));
            }
            None => {
                detail.note = Some(
                    "This song was imported without its audio file; showing the stored fingerprint peaks only."
                        .to_string(),
                );
            }
        }
        self.sink.send(Event::SongDetail(Box::new(detail)));
    }
}

/// The songs that share song `song_id`'s audio, for its page, in
/// [`SharedAudioReport::relations_of`](crate::library::SharedAudioReport::relations_of)'s
/// order. A failure leaves the list empty (logged): the page is still worth showing.
fn shared_audio_links(library: &Library, song_id: i64) -> Vec<SharedAudioLink> {
    let relations = match library.shared_audio_of(song_id) {
        Ok(report) => report.relations_of(song_id),
        Err(err) => {
            tracing::warn!("song {song_id}: could not look for shared audio: {err}");
            return Vec::new();
        }
    };
    let store = library.store();
    relations
        .into_iter()
        .filter_map(|(other, relation)| {
            let title = store.song(other).ok().flatten()?.title;
            Some(SharedAudioLink {
                song_id: other,
                title,
                relation,
            })
        })
        .collect()
}

/// Decodes a file through the analysis front end (mono, resampled, STFT) and keeps each
/// frame's band levels as u8 steps of [`LEVEL_STEP_DB`] above [`LEVEL_FLOOR_DB`]; the frames
/// line up with the stored peaks.
fn spectrogram_levels(
    path: &Path,
    config: &FingerprintConfig,
    cancel: &CancelToken,
) -> Result<Vec<u8>, EngineError> {
    let name = path.display().to_string();
    let mut front_end = FrontEnd::new(config);
    let mut levels = Vec::new();
    let mut quantise = |frame: &[f32]| {
        levels.extend(frame.iter().map(|&db| {
            ((db - LEVEL_FLOOR_DB) / LEVEL_STEP_DB)
                .round()
                .clamp(0.0, 255.0) as u8
        }));
    };
    engine::decode::decode_mono(
        AudioSource::File(path),
        engine::decode::CutStreams::Accept,
        cancel,
        |chunk, rate| front_end.push(chunk, rate, &name, &mut quantise),
    )?;
    front_end.finish(&name, &mut quantise)?;
    Ok(levels)
}

struct PooledLevels {
    levels: Vec<u8>,
    frames: usize,
    factor: usize,
}

/// Keeps long songs displayable: takes the maximum over groups of frames so that at most
/// [`MAX_DETAIL_FRAMES`] remain.
fn pool_frames(levels: &[u8], band_bins: usize) -> PooledLevels {
    let frames = levels.len() / band_bins.max(1);
    let factor = frames.div_ceil(MAX_DETAIL_FRAMES).max(1);
    if factor == 1 {
        return PooledLevels {
            levels: levels.to_vec(),
            frames,
            factor,
        };
    }
    let pooled_frames = frames.div_ceil(factor);
    let mut pooled = vec![0_u8; pooled_frames * band_bins];
    for (frame, column) in levels.chunks_exact(band_bins).enumerate() {
        let start = (frame / factor) * band_bins;
        if let Some(target) = pooled.get_mut(start..start + band_bins) {
            for (dst, &src) in target.iter_mut().zip(column) {
                *dst = (*dst).max(src);
            }
        }
    }
    PooledLevels {
        levels: pooled,
        frames: pooled_frames,
        factor,
    }
}

/// Colours the levels (frame-major) into tiles of at most [`SPECTROGRAM_TILE_FRAMES`] frames,
/// high frequencies at the top, contrast fitted to the song's loudest cells.
fn spectrogram_tiles(levels: &[u8], band_bins: usize) -> Vec<egui::ColorImage> {
    if band_bins == 0 || levels.is_empty() {
        return Vec::new();
    }
    let frames = levels.len() / band_bins;
    // The top of the scale is the 99.7th percentile, the bottom DISPLAY_RANGE_DB below it.
    let mut histogram = [0_usize; 256];
    for &level in levels {
        histogram[usize::from(level)] += 1;
    }
    let mut above = 0;
    let mut top = 255_usize;
    for (level, &count) in histogram.iter().enumerate().rev() {
        above += count;
        if above * 1000 >= levels.len() * 3 {
            top = level;
            break;
        }
    }
    let span_steps = DISPLAY_RANGE_DB / LEVEL_STEP_DB;
    let bottom = top as f32 - span_steps;
    let palette = spectrogram_palette();
    let colour = |level: u8| {
        let t = ((f32::from(level) - bottom) / span_steps).clamp(0.0, 1.0);
        palette[(t * 255.0).round() as usize]
    };
    let mut tiles = Vec::new();
    let mut start = 0;
    while start < frames {
        let width = (frames - start).min(SPECTROGRAM_TILE_FRAMES);
        let mut pixels = vec![egui::Color32::BLACK; width * band_bins];
        for x in 0..width {
            let frame_start = (start + x) * band_bins;
            let Some(column) = levels.get(frame_start..frame_start + band_bins) else {
                break;
            };
            for (bin, &level) in column.iter().enumerate() {
                let y = band_bins - 1 - bin;
                if let Some(pixel) = pixels.get_mut(y * width + x) {
                    *pixel = colour(level);
                }
            }
        }
        tiles.push(egui::ColorImage::new([width, band_bins], pixels));
        start += width;
    }
    tiles
}

/// The spectrogram colour scale (dark violet → orange → pale yellow, "inferno"-like), 256
/// steps from quiet to loud.
pub fn spectrogram_palette() -> [egui::Color32; 256] {
    const STOPS: [(f32, [u8; 3]); 8] = [
        (0.0, [6, 4, 18]),
        (0.15, [31, 12, 72]),
        (0.3, [85, 15, 109]),
        (0.45, [136, 34, 106]),
        (0.6, [186, 54, 85]),
        (0.75, [227, 89, 51]),
        (0.88, [249, 142, 9]),
        (1.0, [252, 255, 164]),
    ];
    let mut palette = [egui::Color32::BLACK; 256];
    for (i, slot) in palette.iter_mut().enumerate() {
        let t = i as f32 / 255.0;
        let upper = STOPS
            .iter()
            .position(|(at, _)| *at >= t)
            .unwrap_or(STOPS.len() - 1);
        let lower = upper.saturating_sub(1);
        let ((t0, c0), (t1, c1)) = (STOPS[lower], STOPS[upper]);
        let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
        let mix = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * f).round() as u8;
        *slot = egui::Color32::from_rgb(mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2]));
    }
    palette
}
