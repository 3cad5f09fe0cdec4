//! Listening sessions (the desktop app's *Listen*, played a recording by
//! `audiofp::listening::listen_to`): a song of the library is named within a few seconds; music
//! that is not in the library gets every attempt and no answer; and an attempt before the last
//! answers only when it is conclusive.

use audiofp::config::{FingerprintConfig, MatchConfig};
use audiofp::engine::{self, Side};
use audiofp::index::{NewSong, OpenMode, StorageKind};
use audiofp::library::Library;
use audiofp::listening::{self, EARLY_ANSWER_CONFIDENCE, listen_to};
use audiofp::testkit::{distort, synth};

const RATE: u32 = 22_050;
const SONG_SECS: f32 = 20.0;

/// An in-memory library of the synthetic songs with these seeds, titled by seed.
fn library_of(seeds: &[u64]) -> Library {
    let config = FingerprintConfig::default();
    let match_config = MatchConfig::default();
    let mut library = Library::open(
        &StorageKind::Memory,
        &config,
        &match_config,
        OpenMode::CreateIfMissing,
    )
    .expect("opening a memory library");
    for &seed in seeds {
        let samples = synth::song(seed, SONG_SECS, RATE);
        let fingerprint =
            engine::fingerprint_samples(&samples, RATE, &config, &match_config, Side::Reference)
                .expect("fingerprinting a synthetic song");
        let song = NewSong {
            title: format!("song {seed}"),
            duration_secs: f64::from(SONG_SECS),
            content_hash: format!("hash-{seed}"),
            ..NewSong::default()
        };
        library.add(&song, &fingerprint).expect("adding a song");
    }
    library.prepare();
    library
}

#[test]
fn a_playing_song_is_named_early_and_unindexed_music_gets_every_attempt_and_no_answer() {
    let library = library_of(&[501, 502, 503]);

    // A song of the library, through a noisy room: named at the first attempts.
    let heard = distort::add_white_noise(
        &distort::excerpt(&synth::song(502, SONG_SECS, RATE), RATE, 3.0, 15.0),
        15.0,
        7,
    );
    let session = listen_to(&library, &heard, RATE, 15.0).expect("listening");
    let found = session.answer.expect("the playing song is named");
    assert_eq!(found.song.title, "song 502");
    assert!(
        (found.offset_secs - 3.0).abs() < 0.1,
        "offset {}",
        found.offset_secs
    );
    assert!(found.confidence >= EARLY_ANSWER_CONFIDENCE);
    assert!(
        session.heard_secs <= 4.0 && session.attempts <= 3,
        "named after {} s and {} attempts",
        session.heard_secs,
        session.attempts
    );

    // Music that is not in the library: all 14 attempts (2 s to 15 s), no answer.
    let other = synth::song(777, 15.0, RATE);
    let session = listen_to(&library, &other, RATE, 15.0).expect("listening");
    assert!(session.answer.is_none(), "{:?}", session.answer);
    assert_eq!(session.attempts, 14);
    assert_eq!(session.heard_secs, 15.0);
    assert!(session.first_at_threshold.is_none());

    // A recording shorter than the session: its last attempt is on all of it.
    let session = listen_to(&library, &other[..RATE as usize * 5], RATE, 15.0).expect("listening");
    assert_eq!(session.attempts, 4);
    assert_eq!(session.heard_secs, 5.0);
}

#[test]
fn an_attempt_before_the_last_answers_only_when_conclusive() {
    let library = library_of(&[601, 602]);
    let clip = distort::excerpt(&synth::song(601, SONG_SECS, RATE), RATE, 5.0, 4.0);
    let mut identification = library
        .identify_samples(&clip, RATE)
        .expect("identifying a clip");
    assert_eq!(identification.matches[0].song.title, "song 601");

    // The threshold is 0.8: a match at 0.9 ends only the last attempt.
    identification.matches[0].confidence = 0.9;
    assert!(listening::answer(&identification, false).is_none());
    let last = listening::answer(&identification, true).expect("the last attempt answers");
    assert_eq!(last.song.title, "song 601");

    identification.matches[0].confidence = EARLY_ANSWER_CONFIDENCE;
    assert!(listening::answer(&identification, false).is_some());

    identification.matches.clear();
    assert!(listening::answer(&identification, true).is_none());
}
