//! Container and codec coverage: songs encoded by the usual external tools (FLAC, MP3 by lame,
//! MP2, Ogg Vorbis, AAC and Apple Lossless in .m4a, AIFF, CAF, an .mp4 video with an AAC audio
//! track) and an 8-channel 192 kHz WAV are indexed, and WAV excerpts identify to them.
//!
//! The encoders are required: CI installs them, and a missing one fails the test by name.

use crate::common;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use audiofp::testkit::{distort, synth, wav};
use common::{
    Expect, Sandbox, argv, assert_all_match, find_song, require_tool, run_tool, write_clip,
};
use serde_json::Value;

const RATE: u32 = 44_100;
const SECS: f32 = 20.0;

/// One encoded song.
struct Encoded {
    title: &'static str,
    seed: u64,
    file: PathBuf,
    /// Mono mix of what went into the encoder.
    mono: Vec<f32>,
}

/// Renders a stereo song, writes it as WAV into `sources`, encodes it into `out` with the tool
/// for `format`, and returns it with its mono mix.
fn encode(sources: &Path, out: &Path, format: &str, seed: u64) -> Encoded {
    let stereo = synth::song_stereo(seed, SECS, RATE);
    let mono: Vec<f32> = stereo
        .chunks_exact(2)
        .map(|f| (f[0] + f[1]) * 0.5)
        .collect();
    let wav_path = sources.join(format!("{format}-source.wav"));
    wav::write_wav_i16(&wav_path, &stereo, RATE, 2).expect("writing the source WAV");
    let quiet_ffmpeg: [&dyn AsRef<OsStr>; 5] =
        [&"-nostdin", &"-hide_banner", &"-loglevel", &"error", &"-y"];
    let (title, file) = match format {
        "flac" => {
            require_tool("flac", "--version");
            let file = out.join("flac-song.flac");
            run_tool("flac", &argv(&[&"-s", &"-f", &"-o", &file, &wav_path]));
            ("flac-song", file)
        }
        "mp3" => {
            require_tool("lame", "--version");
            let file = out.join("mp3-song.mp3");
            run_tool(
                "lame",
                &argv(&[&"--quiet", &"-b", &"128", &wav_path, &file]),
            );
            ("mp3-song", file)
        }
        "vorbis" => {
            require_tool("oggenc", "--version");
            let file = out.join("vorbis-song.ogg");
            run_tool(
                "oggenc",
                &argv(&[&"-Q", &"-q", &"4", &"-o", &file, &wav_path]),
            );
            ("vorbis-song", file)
        }
        // The audio-only formats ffmpeg writes: (format, file name, codec arguments).
        "aac" | "aiff" | "alac" | "mp2" | "caf" => {
            let (name, codec): (&str, &[&str]) = match format {
                "aac" => ("aac-song.m4a", &["-c:a", "aac", "-b:a", "128k"]),
                "aiff" => ("aiff-song.aiff", &[]),
                "alac" => ("alac-song.m4a", &["-c:a", "alac"]),
                "mp2" => ("mp2-song.mp2", &["-c:a", "mp2", "-b:a", "192k"]),
                "caf" => ("caf-song.caf", &["-c:a", "pcm_s16le"]),
                other => unreachable!("{other} is not in the arm's pattern"),
            };
            require_tool("ffmpeg", "-version");
            let file = out.join(name);
            let mut args = argv(&quiet_ffmpeg);
            args.extend(argv(&[&"-i", &wav_path]));
            args.extend(codec.iter().map(OsString::from));
            args.push(file.clone().into_os_string());
            run_tool("ffmpeg", &args);
            let title = name.split('.').next().unwrap_or(name);
            (title, file)
        }
        "video" => {
            require_tool("ffmpeg", "-version");
            let file = out.join("video-song.mp4");
            let mut args = argv(&quiet_ffmpeg);
            args.extend(argv(&[
                &"-f",
                &"lavfi",
                &"-i",
                &"testsrc=size=160x120:rate=10",
                &"-i",
                &wav_path,
                &"-shortest",
                &"-c:v",
                &"mpeg4",
                &"-c:a",
                &"aac",
                &"-b:a",
                &"128k",
                &file,
            ]));
            run_tool("ffmpeg", &args);
            ("video-song", file)
        }
        other => panic!("unknown format {other}"),
    };
    assert!(
        file.metadata().is_ok_and(|m| m.len() > 1000),
        "{format}: the encoder wrote no file at {}",
        file.display()
    );
    Encoded {
        title,
        seed,
        file,
        mono,
    }
}

#[test]
fn every_common_format_and_an_mp4_video_index_and_wav_excerpts_identify_them() {
    let sandbox = Sandbox::new();
    let sources = sandbox.subdir("sources");
    let encoded_dir = sandbox.subdir("encoded");
    let formats = [
        "flac", "mp3", "vorbis", "aac", "alac", "aiff", "caf", "video",
    ];
    let encoded: Vec<Encoded> = formats
        .iter()
        .enumerate()
        .map(|(i, format)| encode(&sources, &encoded_dir, format, 5000 + 11 * i as u64))
        .collect();

    let summary = sandbox.index_json(&[&encoded_dir], 0);
    assert_eq!(
        summary["indexed"],
        formats.len(),
        "every encoded file must index: {summary}"
    );

    let listed = sandbox.list();
    assert_eq!(listed.len(), formats.len(), "list --json: {listed:?}");
    for song in &encoded {
        let entry = find_song(&listed, song.title).unwrap_or_else(|| {
            panic!(
                "{} ({}) not listed under its file name: {listed:?}",
                song.title,
                song.file.display()
            )
        });
        let duration = entry["duration_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (duration - f64::from(SECS)).abs() < 0.25,
            "{}: decoded duration {duration} s, expected {SECS} s",
            song.file.display()
        );
    }

    let clips_dir = sandbox.subdir("clips");
    let mut clips = Vec::new();
    let mut expected = Vec::new();
    for (i, song) in encoded.iter().enumerate() {
        let offset = 1.5 + 1.5 * i as f64;
        let clip = distort::excerpt(&song.mono, RATE, offset as f32, 5.0);
        clips.push(write_clip(
            &clips_dir.join(format!("{}-excerpt.wav", song.title)),
            &clip,
            RATE,
        ));
        expected.push(Expect {
            clip: format!(
                "5 s WAV excerpt at {offset:.1} s of seed {} encoded as {}",
                song.seed,
                song.file.display()
            ),
            title: song.title,
            offset_secs: offset,
        });
    }
    let paths: Vec<&Path> = clips.iter().map(PathBuf::as_path).collect();
    let (run, results) = sandbox.identify(&paths);
    assert_all_match("excerpts of encoded songs", &run, &results, &expected);
}

#[test]
fn eight_channel_192khz_wav_indexes_and_an_excerpt_identifies() {
    const HI_RATE: u32 = 192_000;
    const CHANNELS: usize = 8;
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("surround");
    let seed = 7777;
    let mono = synth::song(seed, 15.0, HI_RATE);
    // Every channel a differently scaled copy; one channel silent, one much quieter.
    let gains: [f32; CHANNELS] = [1.0, 0.8, 0.6, 0.0, 0.5, 0.3, 0.9, 0.05];
    let mut interleaved = Vec::with_capacity(mono.len() * CHANNELS);
    for &s in &mono {
        interleaved.extend(gains.iter().map(|g| s * g));
    }
    let file = folder.join("surround-8ch-192k.wav");
    wav::write_wav_i16(&file, &interleaved, HI_RATE, CHANNELS as u16)
        .expect("writing the 8-channel WAV");
    drop(interleaved);
    let (_, rate, channels) = wav::read_wav(&file).expect("reading the 8-channel WAV back");
    assert_eq!((rate, channels), (HI_RATE, CHANNELS as u16));

    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 1, "index summary: {summary}");
    let listed = sandbox.list();
    let entry = find_song(&listed, "surround-8ch-192k")
        .unwrap_or_else(|| panic!("8-channel song not listed: {listed:?}"));
    let duration = entry["duration_seconds"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (duration - 15.0).abs() < 0.01,
        "8-channel 192 kHz file: decoded duration {duration} s, expected 15 s"
    );

    // A mono 44.1 kHz excerpt, as a phone app would send.
    let offset = 6.3;
    let clip = distort::resample_linear(
        &distort::excerpt(&mono, HI_RATE, offset as f32, 5.0),
        HI_RATE,
        44_100,
    );
    let clip_path = write_clip(&sandbox.path("surround-excerpt.wav"), &clip, 44_100);
    let (run, results) = sandbox.identify(&[&clip_path]);
    assert_all_match(
        "excerpt of the 8-channel 192 kHz song",
        &run,
        &results,
        &[Expect {
            clip: format!("5 s mono 44.1 kHz excerpt at {offset} s of an 8-channel 192 kHz WAV"),
            title: "surround-8ch-192k",
            offset_secs: offset,
        }],
    );
    assert_eq!(results[0]["error"], Value::Null);
}

/// Ogg files joined end to end (a "chained" stream, as stream recorders write them) are one
/// song of all their links, even when a link has another sample rate; before, only the first
/// link was indexed and the rest silently dropped.
#[test]
fn a_chained_ogg_file_is_indexed_whole_across_a_rate_change() {
    const LINK_SECS: f32 = 12.0;
    require_tool("oggenc", "--version");
    let sandbox = Sandbox::new();
    let sources = sandbox.subdir("sources");
    let folder = sandbox.subdir("chained");
    let links = [(6100u64, RATE), (6200, 22_050)];
    let mut chained = Vec::new();
    let mut monos = Vec::new();
    for (seed, rate) in links {
        let stereo = synth::song_stereo(seed, LINK_SECS, rate);
        let wav_path = sources.join(format!("link-{seed}.wav"));
        wav::write_wav_i16(&wav_path, &stereo, rate, 2).expect("writing a link's WAV");
        let ogg = sources.join(format!("link-{seed}.ogg"));
        run_tool(
            "oggenc",
            &argv(&[&"-Q", &"-q", &"4", &"-o", &ogg, &wav_path]),
        );
        chained.extend(std::fs::read(&ogg).expect("reading an encoded link"));
        monos.push((
            stereo
                .chunks_exact(2)
                .map(|f| (f[0] + f[1]) * 0.5)
                .collect::<Vec<f32>>(),
            rate,
        ));
    }
    let chained_path = folder.join("chained.ogg");
    std::fs::write(&chained_path, &chained).expect("writing the chained file");
    // The decoder's own count of seconds adds each link at its rate. Its audio comes in
    // blocks of whole packets, at least MONO_BLOCK_SAMPLES long but for the last of each link.
    let mut blocks: Vec<(usize, u32)> = Vec::new();
    let summary = audiofp::engine::decode::decode_mono(
        audiofp::engine::AudioSource::File(&chained_path),
        audiofp::engine::decode::CutStreams::Refuse,
        &audiofp::cancel::CancelToken::new(),
        |chunk, rate| {
            blocks.push((chunk.len(), rate));
            Ok(())
        },
    )
    .expect("decoding the chained file");
    let rates: Vec<u32> = blocks.iter().map(|&(_, rate)| rate).collect();
    let link_of_rate = |rate| rates.iter().position(|&r| r == rate);
    let (first, second) = (link_of_rate(RATE), link_of_rate(22_050));
    assert!(
        first == Some(0) && second.is_some_and(|at| rates[at..].iter().all(|&r| r == 22_050)),
        "blocks out of link order: {rates:?}"
    );
    for (i, &(len, rate)) in blocks.iter().enumerate() {
        let last_of_link = blocks.get(i + 1).is_none_or(|&(_, next)| next != rate);
        assert!(
            last_of_link || len >= audiofp::engine::decode::MONO_BLOCK_SAMPLES,
            "block {i} of {len} samples at {rate} Hz: {blocks:?}"
        );
    }
    for (rate, link) in [(RATE, 0), (22_050, 1)] {
        let decoded: usize = blocks
            .iter()
            .filter(|&&(_, r)| r == rate)
            .map(|&(len, _)| len)
            .sum();
        let expected = monos[link].0.len();
        assert!(
            decoded.abs_diff(expected) < 4096,
            "link at {rate} Hz: {decoded} samples decoded of {expected}"
        );
    }
    assert!(
        (summary.duration_secs() - 2.0 * f64::from(LINK_SECS)).abs() < 0.25,
        "decoded {} s of a {} s chain",
        summary.duration_secs(),
        2.0 * LINK_SECS
    );

    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 1, "{summary}");
    let listed = sandbox.list();
    let entry = find_song(&listed, "chained").unwrap_or_else(|| panic!("{listed:?}"));
    let duration = entry["duration_seconds"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (duration - 2.0 * f64::from(LINK_SECS)).abs() < 0.25,
        "both links decoded: {duration} s, expected {} s",
        2.0 * LINK_SECS
    );

    // One excerpt from each link, each at the link's own rate.
    let clips_dir = sandbox.subdir("clips");
    let mut clips = Vec::new();
    let mut expected = Vec::new();
    for (link, (mono, rate)) in monos.iter().enumerate() {
        let offset_in_link = 4.0;
        let clip = distort::excerpt(mono, *rate, offset_in_link, 5.0);
        clips.push(write_clip(
            &clips_dir.join(format!("link-{link}.wav")),
            &clip,
            *rate,
        ));
        expected.push(Expect {
            clip: format!("5 s of link {link} ({rate} Hz) at {offset_in_link} s"),
            title: "chained",
            offset_secs: f64::from(LINK_SECS) * link as f64 + f64::from(offset_in_link),
        });
    }
    let paths: Vec<&Path> = clips.iter().map(PathBuf::as_path).collect();
    let (run, results) = sandbox.identify(&paths);
    assert_all_match("excerpts of a chained Ogg file", &run, &results, &expected);
}
