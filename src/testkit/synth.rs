//! Deterministic synthetic music.
//!
//! [`song`] renders a piece of music from a `u64` seed: a lead melody, a chord
//! instrument (sustained pad, rhythmic stabs or arpeggios), a bass line and a drum kit
//! (kick, snare, hi-hats). Notes are additive-synthesis tones with a handful of
//! harmonics, per-harmonic brightness decay and an attack/decay/sustain/release
//! envelope; drums are synthesised (pitched-down sine kick, band-passed noise + tone
//! snare, high-passed noise hats).
//!
//! Everything musical is randomised per seed so that two seeds never sound alike:
//!
//! * tempo (continuous, 70-170 BPM), swing, 3/4 or 4/4 time;
//! * tuning (A4 = 440 Hz * 2^(c/1200), c uniform in about +-40 cents);
//! * key and scale/mode (major, minor, modes, pentatonics);
//! * chord progressions (a per-song weighted Markov chain over scale degrees);
//! * melody (a random walk on the scale with rests, varied note lengths, chord-tone
//!   targeting on strong beats and varied repetitions of a per-section motif);
//! * instrument timbres (number and amplitudes of harmonics, inharmonicity, attack,
//!   decay, sustain, release, brightness) and mix levels;
//! * drum patterns and drum timbres.
//!
//! A song is a sequence of sections of 4-8 bars; each section gets its own (or a
//! reused) progression, new melodies, its own bass rhythm, a mutated drum pattern,
//! optional fills and breakdowns (instruments dropping out), so different parts of one
//! song are never exact copies of each other.
//!
//! Properties callers can rely on:
//!
//! * Same seed, duration and sample rate give bit-identical samples.
//! * The music (event times, pitches) does not depend on the sample rate, and a shorter
//!   render is a prefix of a longer one up to a constant gain factor (the output is
//!   normalised to a peak of [`PEAK_LEVEL`]).
//! * Output is finite, peak exactly [`PEAK_LEVEL`] (0.8) unless silent, typical RMS
//!   about 0.09-0.19 (median ~0.145 over 100 seeds).

use std::f64::consts::TAU;

use super::rng::Rng;

/// Peak absolute sample value that rendered songs are normalised to.
pub const PEAK_LEVEL: f32 = 0.8;

/// Maximum number of harmonics per note.
const MAX_HARM: usize = 8;
/// Note lengths (in sixteenth steps) the melody chooses from.
const NOTE_LENS: [usize; 6] = [1, 2, 3, 4, 6, 8];

const MAJOR: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 10];
const DORIAN: [i32; 7] = [0, 2, 3, 5, 7, 9, 10];
const MIXOLYDIAN: [i32; 7] = [0, 2, 4, 5, 7, 9, 10];
const HARMONIC_MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 11];
const PHRYGIAN: [i32; 7] = [0, 1, 3, 5, 7, 8, 10];
const LYDIAN: [i32; 7] = [0, 2, 4, 6, 7, 9, 11];

/// A scale: the 7-note scale chords are built from, and the scale the melody walks on.
struct Scale {
    name: &'static str,
    chord: [i32; 7],
    melody: &'static [i32],
}

const SCALES: [Scale; 9] = [
    Scale {
        name: "major",
        chord: MAJOR,
        melody: &MAJOR,
    },
    Scale {
        name: "natural minor",
        chord: MINOR,
        melody: &MINOR,
    },
    Scale {
        name: "dorian",
        chord: DORIAN,
        melody: &DORIAN,
    },
    Scale {
        name: "mixolydian",
        chord: MIXOLYDIAN,
        melody: &MIXOLYDIAN,
    },
    Scale {
        name: "harmonic minor",
        chord: HARMONIC_MINOR,
        melody: &HARMONIC_MINOR,
    },
    Scale {
        name: "phrygian",
        chord: PHRYGIAN,
        melody: &PHRYGIAN,
    },
    Scale {
        name: "lydian",
        chord: LYDIAN,
        melody: &LYDIAN,
    },
    Scale {
        name: "major pentatonic",
        chord: MAJOR,
        melody: &[0, 2, 4, 7, 9],
    },
    Scale {
        name: "minor pentatonic",
        chord: MINOR,
        melody: &[0, 3, 5, 7, 10],
    },
];

/// The global, per-seed parameters of a song (see [`song_info`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SongInfo {
    /// Tempo in beats per minute, uniform in 70..170.
    pub tempo_bpm: f32,
    /// Detuning of the reference pitch in cents, uniform in -40..+40.
    pub tuning_cents: f32,
    /// Reference pitch A4 in Hz: `440 * 2^(tuning_cents / 1200)`.
    pub a4_hz: f32,
    /// Pitch class of the tonic (0 = C, 1 = C#, ..., 11 = B).
    pub key_root: u8,
    /// Name of the scale or mode, e.g. `"dorian"` or `"minor pentatonic"`.
    pub scale: &'static str,
    /// Beats per bar (3 or 4); a beat is a quarter note of four sixteenth steps.
    pub beats_per_bar: u32,
    /// Swing: fraction of a sixteenth by which off-beat sixteenths are delayed (0 = straight).
    pub swing: f32,
}

impl SongInfo {
    /// Duration of one beat in seconds.
    pub fn beat_secs(&self) -> f32 {
        60.0 / self.tempo_bpm
    }

    /// Duration of one bar in seconds.
    pub fn bar_secs(&self) -> f32 {
        self.beat_secs() * self.beats_per_bar as f32
    }
}

/// The global parameters (tempo, tuning, key, ...) of the song generated from `seed`.
///
/// Cheap; useful in tests, e.g. to check that two seeds have different tempi or to
/// align excerpts on bar boundaries.
pub fn song_info(seed: u64) -> SongInfo {
    Style::new(seed).info
}

/// Render `duration_secs` of mono music for `seed` at `sample_rate_hz`.
///
/// Deterministic: the same arguments always give identical samples. Returns
/// `round(duration_secs * sample_rate_hz)` samples (empty for a non-positive duration
/// or a zero sample rate), normalised so that the peak absolute value is
/// [`PEAK_LEVEL`]. Rendering 30 s at 44.1 kHz takes well under 0.1 s in an optimised
/// build.
pub fn song(seed: u64, duration_secs: f32, sample_rate_hz: u32) -> Vec<f32> {
    render(seed, duration_secs, sample_rate_hz, false)
}

/// Like [`song`] but stereo: interleaved `L, R` frames (length `2 * song(..).len()`).
///
/// Same music as [`song`] for the same seed; each instrument has its own pan position
/// and the chord instrument is slightly delayed in the right channel for width, so the
/// two channels differ. Normalised to a joint peak of [`PEAK_LEVEL`].
pub fn song_stereo(seed: u64, duration_secs: f32, sample_rate_hz: u32) -> Vec<f32> {
    render(seed, duration_secs, sample_rate_hz, true)
}

// ---------------------------------------------------------------------------------
// Style: per-song random parameters
// ---------------------------------------------------------------------------------

/// Timbre of a pitched instrument.
#[derive(Debug, Clone, Copy)]
struct Timbre {
    /// Harmonic amplitudes (RMS-normalised), `n_harm` of them are used.
    amps: [f64; MAX_HARM],
    n_harm: usize,
    /// Inharmonicity coefficient: harmonic k at `k * f0 * sqrt(1 + B k^2)`.
    inharm: f64,
    /// Linear attack time in seconds.
    attack: f64,
    /// Exponential decay time constant (towards `sustain`) in seconds.
    decay: f64,
    /// Sustain level relative to the peak.
    sustain: f64,
    /// Release time to -60 dB after note-off, in seconds.
    release: f64,
    /// Extra decay rate per harmonic number (1/s): higher harmonics fade faster.
    bright: f64,
}

/// Ranges for [`random_timbre`]; each pair is `(min, max)`.
struct TimbreRanges {
    harm: (usize, usize),
    slope: (f32, f32),
    attack: (f32, f32),
    decay: (f32, f32),
    sustain: (f32, f32),
    release: (f32, f32),
    bright: (f32, f32),
}

const LEAD_RANGES: TimbreRanges = TimbreRanges {
    harm: (3, 8),
    slope: (0.7, 1.7),
    attack: (0.003, 0.04),
    decay: (0.08, 0.6),
    sustain: (0.15, 0.75),
    release: (0.08, 0.4),
    bright: (0.0, 8.0),
};
const PAD_SUSTAIN_RANGES: TimbreRanges = TimbreRanges {
    harm: (3, 6),
    slope: (1.0, 2.0),
    attack: (0.06, 0.3),
    decay: (0.3, 1.2),
    sustain: (0.55, 0.9),
    release: (0.3, 0.9),
    bright: (0.0, 2.0),
};
const PAD_PLUCK_RANGES: TimbreRanges = TimbreRanges {
    harm: (3, 7),
    slope: (0.8, 1.8),
    attack: (0.002, 0.012),
    decay: (0.06, 0.35),
    sustain: (0.0, 0.3),
    release: (0.1, 0.35),
    bright: (2.0, 12.0),
};
const BASS_RANGES: TimbreRanges = TimbreRanges {
    harm: (2, 5),
    slope: (0.8, 2.0),
    attack: (0.003, 0.02),
    decay: (0.1, 0.5),
    sustain: (0.3, 0.8),
    release: (0.05, 0.15),
    bright: (0.0, 5.0),
};

fn random_timbre(r: &mut Rng, t: &TimbreRanges) -> Timbre {
    let n_harm = (t.harm.0 + r.below(t.harm.1 - t.harm.0 + 1)).min(MAX_HARM);
    let slope = r.range(t.slope.0, t.slope.1);
    // Some instruments are hollow (clarinet-like: weak even harmonics).
    let even = if r.chance(0.5) {
        1.0
    } else {
        r.range(0.1, 0.8)
    };
    let mut amps = [0.0f64; MAX_HARM];
    let mut energy = 0.0f64;
    for (k, a) in amps.iter_mut().enumerate().take(n_harm) {
        let h = (k + 1) as f32;
        let mut v = h.powf(-slope);
        if k > 0 {
            v *= r.range(0.4, 1.0);
        }
        if (k + 1).is_multiple_of(2) {
            v *= even;
        }
        *a = f64::from(v);
        energy += f64::from(v) * f64::from(v);
    }
    let norm = 1.0 / energy.sqrt().max(1e-9);
    for a in &mut amps {
        *a *= norm;
    }
    Timbre {
        amps,
        n_harm,
        inharm: if r.chance(0.4) {
            r.range64(0.0, 0.0008)
        } else {
            0.0
        },
        attack: r.range64(t.attack.0, t.attack.1),
        decay: r.range64(t.decay.0, t.decay.1),
        sustain: r.range64(t.sustain.0, t.sustain.1),
        release: r.range64(t.release.0, t.release.1),
        bright: r.range64(t.bright.0, t.bright.1),
    }
}

/// Drum kit timbre parameters.
#[derive(Debug, Clone)]
struct DrumKit {
    noise_seed: u64,
    kick_f_start: f64,
    kick_f_end: f64,
    kick_pitch_tau: f64,
    kick_amp_tau: f64,
    kick_click: f64,
    snare_tone_f: f64,
    snare_tone_tau: f64,
    snare_tone_mix: f64,
    snare_noise_tau: f64,
    snare_bp_f: f64,
    snare_bp_q: f64,
    snare_hp_f: f64,
    hat_f: f64,
    hat_q: f64,
    hat_tau: f64,
    hat_open_tau: f64,
}

impl DrumKit {
    fn new(r: &mut Rng) -> Self {
        Self {
            noise_seed: r.next_u64(),
            kick_f_start: r.range64(90.0, 200.0),
            kick_f_end: r.range64(38.0, 62.0),
            kick_pitch_tau: r.range64(0.015, 0.06),
            kick_amp_tau: r.range64(0.07, 0.22),
            kick_click: r.range64(0.0, 0.35),
            snare_tone_f: r.range64(140.0, 260.0),
            snare_tone_tau: r.range64(0.02, 0.06),
            snare_tone_mix: r.range64(0.2, 0.7),
            snare_noise_tau: r.range64(0.045, 0.16),
            snare_bp_f: r.range64(1200.0, 5000.0),
            snare_bp_q: r.range64(0.5, 1.2),
            snare_hp_f: r.range64(2000.0, 5000.0),
            hat_f: r.range64(5500.0, 10_000.0),
            hat_q: r.range64(0.6, 1.6),
            hat_tau: r.range64(0.01, 0.045),
            hat_open_tau: r.range64(0.1, 0.3),
        }
    }
}

/// A one-bar drum pattern on sixteenth steps; values are velocities (0 = no hit).
#[derive(Debug, Clone)]
struct DrumPattern {
    kick: Vec<f32>,
    snare: Vec<f32>,
    hat: Vec<f32>,
    hat_open: Vec<bool>,
    /// Steps holding the backbeat snare (never mutated).
    backbeats: Vec<usize>,
    /// Step interval of the hats (1, 2 or 4).
    hat_rate: usize,
    hat_accent: (f32, f32),
}

impl DrumPattern {
    fn new(r: &mut Rng, spb: usize, beats: u32) -> Self {
        let backbeats: Vec<usize> = if beats == 4 {
            if r.chance(0.2) { vec![8] } else { vec![4, 12] }
        } else if r.chance(0.5) {
            vec![4]
        } else {
            vec![4, 8]
        };
        let mut kick = vec![0.0; spb];
        let mut snare = vec![0.0; spb];
        kick[0] = 1.0;
        for &b in &backbeats {
            snare[b] = 1.0;
        }
        let density = r.range(0.5, 1.5);
        for s in 1..spb {
            if backbeats.contains(&s) {
                if r.chance(0.08) {
                    kick[s] = 0.8;
                }
                continue;
            }
            let p = if s.is_multiple_of(4) {
                0.45
            } else if s.is_multiple_of(2) {
                0.25
            } else {
                0.08
            };
            if r.chance(p * density) {
                kick[s] = r.range(0.6, 1.0);
            }
            if r.chance(0.07) {
                snare[s] = r.range(0.12, 0.3);
            }
        }
        let hat_rate = [4, 2, 1][r.weighted(&[0.12, 0.58, 0.3])];
        let hat_accent = (r.range(0.6, 1.0), r.range(0.35, 0.9));
        let mut pat = Self {
            kick,
            snare,
            hat: vec![0.0; spb],
            hat_open: vec![false; spb],
            backbeats,
            hat_rate,
            hat_accent,
        };
        pat.fill_hats(r);
        if r.chance(0.35) {
            let beats = spb / 4;
            let s = 4 * r.below(beats) + 2;
            pat.hat_open[s] = true;
            pat.hat[s] = pat.hat[s].max(0.75);
        }
        pat
    }

    fn fill_hats(&mut self, r: &mut Rng) {
        for (s, h) in self.hat.iter_mut().enumerate() {
            *h = if !s.is_multiple_of(self.hat_rate) {
                0.0
            } else if s.is_multiple_of(4) {
                self.hat_accent.0 * r.range(0.85, 1.0)
            } else {
                self.hat_accent.1 * r.range(0.85, 1.0)
            };
        }
    }

    /// A variation of this pattern for a new section.
    fn mutate(&self, r: &mut Rng) -> Self {
        let mut p = self.clone();
        let spb = p.kick.len();
        if r.chance(0.2) {
            p.hat_rate = [4, 2, 1][r.weighted(&[0.1, 0.5, 0.4])];
            let open = p.hat_open.clone();
            p.fill_hats(r);
            for (h, o) in p.hat.iter_mut().zip(open) {
                if o {
                    *h = h.max(0.75);
                }
            }
        }
        for _ in 0..r.below(4) {
            let s = 1 + r.below(spb - 1);
            if p.backbeats.contains(&s) {
                continue;
            }
            match r.below(3) {
                0 => {
                    p.kick[s] = if p.kick[s] > 0.0 {
                        0.0
                    } else {
                        r.range(0.6, 1.0)
                    }
                }
                1 => {
                    p.snare[s] = if p.snare[s] > 0.0 {
                        0.0
                    } else {
                        r.range(0.12, 0.3)
                    }
                }
                _ => {
                    p.hat[s] = if p.hat[s] > 0.0 {
                        0.0
                    } else {
                        p.hat_accent.1 * 0.7
                    }
                }
            }
        }
        p
    }
}

/// How the chord instrument plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PadMode {
    Sustain,
    Stabs,
    Arp,
}

/// Mix parameters of one track.
#[derive(Debug, Clone, Copy)]
struct TrackMix {
    gain: f32,
    /// -1 = left, +1 = right.
    pan: f32,
    /// Delay of the right channel in seconds (stereo width).
    delay_r: f64,
}

/// All per-song random parameters.
struct Style {
    info: SongInfo,
    scale: &'static Scale,
    key: i32,
    steps_per_bar: usize,
    step_secs: f64,
    swing: f64,
    pad_mode: PadMode,
    lead: Timbre,
    pad: Timbre,
    bass: Timbre,
    kit: DrumKit,
    chord_weights: [f32; 7],
    seventh_prob: f32,
    /// MIDI note of melody degree 0.
    lead_base_midi: i32,
    /// Centre of the melody's range, in melody-scale degrees.
    lead_center: i32,
    /// Centre of the chord voicings (MIDI).
    pad_center: i32,
    /// Lowest bass root (MIDI).
    bass_low: i32,
    humanize: f32,
    drums: DrumPattern,
    /// lead, pad, bass, kick, snare, hat.
    mix: [TrackMix; 6],
}

impl Style {
    fn new(seed: u64) -> Self {
        let mut r = Rng::new(seed);
        let tempo_bpm = r.range(70.0, 170.0);
        let tuning_cents = r.range(-40.0, 40.0);
        let a4_hz = 440.0 * 2f32.powf(tuning_cents / 1200.0);
        let key = r.below(12) as i32;
        let scale = &SCALES[r.below(SCALES.len())];
        let beats_per_bar: u32 = if r.chance(0.2) { 3 } else { 4 };
        let swing = if r.chance(0.35) {
            r.range(0.1, 0.35)
        } else {
            0.0
        };
        let pad_mode = match r.weighted(&[0.45, 0.25, 0.3]) {
            0 => PadMode::Sustain,
            1 => PadMode::Stabs,
            _ => PadMode::Arp,
        };
        let lead = random_timbre(&mut r, &LEAD_RANGES);
        let pad = random_timbre(
            &mut r,
            if pad_mode == PadMode::Sustain {
                &PAD_SUSTAIN_RANGES
            } else {
                &PAD_PLUCK_RANGES
            },
        );
        let bass = random_timbre(&mut r, &BASS_RANGES);
        let kit = DrumKit::new(&mut r);
        let mut chord_weights = [3.0, 1.5, 0.8, 2.5, 2.5, 2.0, 0.3];
        for w in &mut chord_weights {
            *w *= r.range(0.3, 1.7);
        }
        let seventh_prob = if r.chance(0.4) {
            r.range(0.2, 0.8)
        } else {
            0.0
        };
        let octave_up = if r.chance(0.5) { 12 } else { 0 };
        let lead_base_midi = 48 + key - if key > 6 { 12 } else { 0 } + octave_up;
        let lead_center = scale.melody.len() as i32;
        let pad_center = 57 + r.below(7) as i32;
        let bass_low = 33 + r.below(7) as i32;
        let humanize = r.range(0.0, 0.008);
        let steps_per_bar = 4 * beats_per_bar as usize;
        let drums = DrumPattern::new(&mut r, steps_per_bar, beats_per_bar);
        let mix = [
            TrackMix {
                gain: r.range(0.28, 0.42),
                pan: r.range(-0.35, 0.35),
                delay_r: 0.0,
            },
            TrackMix {
                gain: r.range(0.1, 0.17),
                pan: r.range(-0.2, 0.2),
                delay_r: r.range64(0.004, 0.015),
            },
            TrackMix {
                gain: r.range(0.3, 0.45),
                pan: r.range(-0.05, 0.05),
                delay_r: 0.0,
            },
            TrackMix {
                gain: r.range(0.55, 0.8),
                pan: 0.0,
                delay_r: 0.0,
            },
            TrackMix {
                gain: r.range(0.25, 0.4),
                pan: r.range(-0.12, 0.12),
                delay_r: 0.0,
            },
            TrackMix {
                gain: r.range(0.06, 0.13),
                pan: r.range(-0.5, 0.5),
                delay_r: 0.0,
            },
        ];
        let step_secs = 60.0 / f64::from(tempo_bpm) / 4.0;
        Self {
            info: SongInfo {
                tempo_bpm,
                tuning_cents,
                a4_hz,
                key_root: key as u8,
                scale: scale.name,
                beats_per_bar,
                swing,
            },
            scale,
            key,
            steps_per_bar,
            step_secs,
            swing: f64::from(swing),
            pad_mode,
            lead,
            pad,
            bass,
            kit,
            chord_weights,
            seventh_prob,
            lead_base_midi,
            lead_center,
            pad_center,
            bass_low,
            humanize,
            drums,
            mix,
        }
    }

    fn bar_start(&self, bar: usize) -> f64 {
        (bar * self.steps_per_bar) as f64 * self.step_secs
    }

    fn step_time(&self, bar: usize, step: usize) -> f64 {
        let swing = if step % 2 == 1 { self.swing } else { 0.0 };
        ((bar * self.steps_per_bar + step) as f64 + swing) * self.step_secs
    }

    /// Pitch classes of a chord, root first.
    fn chord_pcs(&self, c: Chord) -> Vec<i32> {
        let n = if c.seventh { 4 } else { 3 };
        (0..n)
            .map(|i| {
                let d = c.degree + 2 * i;
                (self.key + self.scale.chord[d % 7] + 12 * (d / 7) as i32).rem_euclid(12)
            })
            .collect()
    }

    /// MIDI note of a melody-scale degree (may be negative or above one octave).
    fn mel_midi(&self, deg: i32) -> i32 {
        let n = self.scale.melody.len() as i32;
        self.lead_base_midi + 12 * deg.div_euclid(n) + self.scale.melody[deg.rem_euclid(n) as usize]
    }

    /// The melody degree nearest to `deg` that is a chord tone (or `deg`).
    fn snap(&self, deg: i32, pcs: &[i32]) -> i32 {
        for delta in [0, -1, 1, -2, 2, -3, 3] {
            if pcs.contains(&self.mel_midi(deg + delta).rem_euclid(12)) {
                return deg + delta;
            }
        }
        deg
    }

    /// Close voicing of the chord around `pad_center`, ascending.
    fn voicing(&self, pcs: &[i32]) -> Vec<i32> {
        let lo = self.pad_center - 6;
        let mut v: Vec<i32> = pcs
            .iter()
            .map(|&pc| lo + (pc - lo).rem_euclid(12))
            .collect();
        v.sort_unstable();
        v
    }

    fn new_progression(&self, r: &mut Rng, n: usize) -> Vec<Chord> {
        let mut d = if r.chance(0.5) {
            0
        } else {
            r.weighted(&self.chord_weights)
        };
        let mut prog = Vec::with_capacity(n);
        for i in 0..n {
            if i + 1 == n && n >= 4 && r.chance(0.35) {
                d = 4; // end the phrase on the dominant
            }
            prog.push(Chord {
                degree: d,
                seventh: r.chance(self.seventh_prob),
            });
            let mut w = self.chord_weights;
            w[d] *= 0.15;
            d = r.weighted(&w);
        }
        prog
    }

    fn jitter(&self, r: &mut Rng) -> f64 {
        f64::from(r.range(-self.humanize, self.humanize))
    }
}

// ---------------------------------------------------------------------------------
// Composition
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Chord {
    /// Scale degree of the root (0..7) in the chord scale.
    degree: usize,
    seventh: bool,
}

/// A pitched note event.
#[derive(Debug, Clone, Copy)]
struct Note {
    t: f64,
    dur: f64,
    midi: f64,
    vel: f64,
}

/// A drum hit.
#[derive(Debug, Clone, Copy)]
struct Hit {
    t: f64,
    vel: f64,
    open: bool,
}

#[derive(Debug, Default)]
struct Score {
    lead: Vec<Note>,
    pad: Vec<Note>,
    bass: Vec<Note>,
    kick: Vec<Hit>,
    snare: Vec<Hit>,
    hat: Vec<Hit>,
}

/// A melody note within a bar.
#[derive(Debug, Clone, Copy)]
struct MelNote {
    step: usize,
    len: usize,
    deg: i32,
    vel: f32,
}

/// Per-section parameters.
struct Section {
    rest_prob: f32,
    len_weights: [f32; 6],
    legato: f32,
    motif_prob: f32,
    lead_shift: i32,
    lead_on: bool,
    pad_on: bool,
    bass_on: bool,
    drums_on: bool,
    bass_onsets: Vec<usize>,
    bass_legato: f32,
    stab_onsets: Vec<usize>,
    stab_len: usize,
    arp_rate: usize,
    arp_kind: usize,
    drums: DrumPattern,
    fill: bool,
    gain: f32,
}

impl Section {
    fn new(style: &Style, r: &mut Rng, chords_per_bar: usize) -> Self {
        let spb = style.steps_per_bar;
        let mut len_weights = [1.0, 3.0, 0.7, 2.0, 0.6, 0.5];
        for w in &mut len_weights {
            *w *= r.range(0.3, 1.8);
        }
        let mut lead_on = r.chance(0.9);
        let pad_on = r.chance(0.9);
        if !lead_on && !pad_on {
            lead_on = true;
        }
        let bass_on = r.chance(0.93);
        let drums_on = r.chance(0.88);
        let density = r.range(0.3, 1.5);
        let mut bass_onsets = vec![0];
        for s in 1..spb {
            let p = if s.is_multiple_of(4) {
                0.5
            } else if s.is_multiple_of(2) {
                0.3
            } else {
                0.1
            };
            if (chords_per_bar == 2 && s == spb / 2) || r.chance(p * density) {
                bass_onsets.push(s);
            }
        }
        let mut stab_onsets = vec![0];
        for s in (2..spb).step_by(2) {
            if r.chance(0.3) {
                stab_onsets.push(s);
            }
        }
        Self {
            rest_prob: r.range(0.05, 0.35),
            len_weights,
            legato: r.range(0.6, 1.0),
            motif_prob: r.range(0.2, 0.7),
            lead_shift: r.below(5) as i32 - 2,
            lead_on,
            pad_on,
            bass_on,
            drums_on,
            bass_onsets,
            bass_legato: r.range(0.5, 0.95),
            stab_onsets,
            stab_len: 1 + r.below(3),
            arp_rate: if r.chance(0.5) { 2 } else { 1 },
            arp_kind: r.below(3),
            drums: style.drums.mutate(r),
            fill: r.chance(0.5),
            gain: r.range(0.8, 1.1),
        }
    }
}

/// A bar of melody by random walk on the melody scale.
fn melody_bar(
    style: &Style,
    sec: &Section,
    r: &mut Rng,
    deg: &mut i32,
    chord_at: &dyn Fn(usize) -> Chord,
) -> Vec<MelNote> {
    let spb = style.steps_per_bar;
    let n_mel = style.scale.melody.len() as i32;
    let center = style.lead_center + sec.lead_shift;
    let mut out = Vec::new();
    let mut s = 0;
    while s < spb {
        let len = NOTE_LENS[r.weighted(&sec.len_weights)].min(spb - s);
        if r.chance(sec.rest_prob) {
            s += len;
            continue;
        }
        // Moves -3..=3 degrees, mostly steps, pulled back towards the centre.
        let mut w = [0.3, 1.0, 3.0, 0.7, 3.0, 1.0, 0.3];
        let off = *deg - center;
        if off > 3 {
            w[4] *= 0.4;
            w[5] *= 0.3;
            w[6] *= 0.2;
        } else if off < -3 {
            w[0] *= 0.2;
            w[1] *= 0.3;
            w[2] *= 0.4;
        }
        *deg += r.weighted(&w) as i32 - 3;
        if s.is_multiple_of(4) && r.chance(0.65) {
            *deg = style.snap(*deg, &style.chord_pcs(chord_at(s)));
        }
        *deg = (*deg).clamp(center - n_mel - 2, center + n_mel + 2);
        let accent = if s.is_multiple_of(4) { 0.9 } else { 0.75 };
        out.push(MelNote {
            step: s,
            len,
            deg: *deg,
            vel: accent * r.range(0.85, 1.1),
        });
        s += len;
    }
    out
}

/// A varied repetition of a motif: notes dropped or moved by a step, strong-beat
/// notes re-targeted to the current chord.
fn vary_motif(
    style: &Style,
    motif: &[MelNote],
    r: &mut Rng,
    deg: &mut i32,
    chord_at: &dyn Fn(usize) -> Chord,
) -> Vec<MelNote> {
    let mut out = Vec::with_capacity(motif.len());
    for n in motif {
        if r.chance(0.12) {
            continue;
        }
        let mut d = n.deg;
        if r.chance(0.25) {
            d += if r.chance(0.5) { 1 } else { -1 };
        }
        if n.step.is_multiple_of(4) {
            d = style.snap(d, &style.chord_pcs(chord_at(n.step)));
        }
        *deg = d;
        out.push(MelNote {
            deg: d,
            vel: n.vel * r.range(0.9, 1.1),
            ..*n
        });
    }
    out
}

/// Generate all note and drum events starting before `duration` seconds.
fn compose(style: &Style, r: &mut Rng, duration: f64) -> Score {
    let spb = style.steps_per_bar;
    let step = style.step_secs;
    let mut score = Score::default();
    let mut progressions: Vec<Vec<Chord>> = Vec::new();
    let mut lead_deg = style.lead_center;
    let mut bar = 0usize;
    while style.bar_start(bar) < duration {
        let n_bars = 4 + r.below(5);
        let cpb = if spb == 16 && r.chance(0.25) { 2 } else { 1 };
        let n_chords = n_bars * cpb;
        let prog: Vec<Chord> = if !progressions.is_empty() && r.chance(0.35) {
            let p = &progressions[r.below(progressions.len())];
            (0..n_chords).map(|i| p[i % p.len()]).collect()
        } else {
            style.new_progression(r, n_chords)
        };
        progressions.push(prog.clone());
        let sec = Section::new(style, r, cpb);
        let mut motif: Option<Vec<MelNote>> = None;
        for b in 0..n_bars {
            if style.bar_start(bar) >= duration {
                break;
            }
            let chord_at = |s: usize| prog[b * cpb + s * cpb / spb];
            let vel_scale = f64::from(sec.gain);

            if sec.lead_on {
                let varied = match &motif {
                    Some(m) if r.chance(sec.motif_prob) => {
                        Some(vary_motif(style, m, r, &mut lead_deg, &chord_at))
                    }
                    _ => None,
                };
                let notes = match varied {
                    Some(v) => v,
                    None => {
                        let m = melody_bar(style, &sec, r, &mut lead_deg, &chord_at);
                        if motif.is_none() {
                            motif = Some(m.clone());
                        }
                        m
                    }
                };
                for n in notes {
                    let t = (style.step_time(bar, n.step) + style.jitter(r)).max(0.0);
                    score.lead.push(Note {
                        t,
                        dur: n.len as f64 * step * f64::from(sec.legato),
                        midi: f64::from(style.mel_midi(n.deg)),
                        vel: f64::from(n.vel) * vel_scale,
                    });
                }
            }

            if sec.pad_on {
                compose_pad(style, &sec, r, bar, &chord_at, cpb, &mut score.pad);
            }

            if sec.bass_on {
                for (k, &on) in sec.bass_onsets.iter().enumerate() {
                    let next = sec.bass_onsets.get(k + 1).copied().unwrap_or(spb);
                    let pcs = style.chord_pcs(chord_at(on));
                    let root = style.bass_low + (pcs[0] - style.bass_low).rem_euclid(12);
                    let midi = if k == 0 {
                        root
                    } else {
                        match r.weighted(&[6.0, 1.5, 1.2, 0.8]) {
                            0 => root,
                            1 => root + (pcs[2] - pcs[0]).rem_euclid(12),
                            2 => root + 12,
                            _ => root + (pcs[1] - pcs[0]).rem_euclid(12),
                        }
                    };
                    let t = (style.step_time(bar, on) + style.jitter(r)).max(0.0);
                    score.bass.push(Note {
                        t,
                        dur: (next - on) as f64 * step * f64::from(sec.bass_legato),
                        midi: f64::from(midi),
                        vel: f64::from(
                            if on.is_multiple_of(4) { 0.9 } else { 0.75 } * r.range(0.9, 1.05),
                        ) * vel_scale,
                    });
                }
            }

            if sec.drums_on {
                let pat = &sec.drums;
                let fill_from = if sec.fill && b + 1 == n_bars {
                    spb - 4
                } else {
                    spb
                };
                for s in 0..spb {
                    let t = style.step_time(bar, s);
                    let hit = |v: f32, open: bool, r: &mut Rng| Hit {
                        t: (t + style.jitter(r) * 0.5).max(0.0),
                        vel: f64::from(v * r.range(0.85, 1.05)),
                        open,
                    };
                    if pat.kick[s] > 0.0 {
                        score.kick.push(hit(pat.kick[s], false, r));
                    }
                    if s >= fill_from {
                        let v = 0.45 + 0.15 * (s - fill_from) as f32;
                        score.snare.push(hit(v, false, r));
                    } else if pat.snare[s] > 0.0 {
                        score.snare.push(hit(pat.snare[s], false, r));
                    }
                    if pat.hat[s] > 0.0 {
                        score.hat.push(hit(pat.hat[s], pat.hat_open[s], r));
                    }
                }
            }
            bar += 1;
        }
    }
    score
}

/// Chord-instrument notes for one bar.
fn compose_pad(
    style: &Style,
    sec: &Section,
    r: &mut Rng,
    bar: usize,
    chord_at: &dyn Fn(usize) -> Chord,
    chords_per_bar: usize,
    out: &mut Vec<Note>,
) {
    let spb = style.steps_per_bar;
    let step = style.step_secs;
    let vel = 0.7 * f64::from(sec.gain);
    let slot = spb / chords_per_bar;
    for ci in 0..chords_per_bar {
        let start = ci * slot;
        let voicing = style.voicing(&style.chord_pcs(chord_at(start)));
        match style.pad_mode {
            PadMode::Sustain => {
                let t = (style.step_time(bar, start) + style.jitter(r)).max(0.0);
                for &m in &voicing {
                    out.push(Note {
                        t,
                        dur: slot as f64 * step * 0.97,
                        midi: f64::from(m),
                        vel: vel * f64::from(r.range(0.85, 1.0)),
                    });
                }
            }
            PadMode::Stabs => {
                for &on in sec
                    .stab_onsets
                    .iter()
                    .filter(|&&s| s >= start && s < start + slot)
                {
                    let t = (style.step_time(bar, on) + style.jitter(r)).max(0.0);
                    for &m in &voicing {
                        out.push(Note {
                            t,
                            dur: sec.stab_len as f64 * step * 0.8,
                            midi: f64::from(m),
                            vel: vel * f64::from(r.range(0.8, 1.0)),
                        });
                    }
                }
            }
            PadMode::Arp => {
                let mut seq = voicing.clone();
                if let Some(&lowest) = voicing.first() {
                    seq.push(lowest + 12);
                }
                match sec.arp_kind {
                    0 => {}
                    1 => seq.reverse(),
                    _ => {
                        let down: Vec<i32> = seq
                            .iter()
                            .rev()
                            .skip(1)
                            .take(seq.len().saturating_sub(2))
                            .copied()
                            .collect();
                        seq.extend(down);
                    }
                }
                let mut i = 0;
                let mut s = start;
                while s < start + slot {
                    let t = (style.step_time(bar, s) + style.jitter(r)).max(0.0);
                    out.push(Note {
                        t,
                        dur: sec.arp_rate as f64 * step * 1.5,
                        midi: f64::from(seq[i % seq.len()]),
                        vel: vel
                            * f64::from(
                                if s.is_multiple_of(4) { 1.0 } else { 0.8 } * r.range(0.85, 1.0),
                            ),
                    });
                    i += 1;
                    s += sec.arp_rate;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------

fn render(seed: u64, duration_secs: f32, sample_rate_hz: u32, stereo: bool) -> Vec<f32> {
    if sample_rate_hz == 0 || duration_secs.is_nan() || duration_secs <= 0.0 {
        return Vec::new();
    }
    let sr = f64::from(sample_rate_hz);
    let n = (f64::from(duration_secs) * sr).round() as usize;
    if n == 0 {
        return Vec::new();
    }
    let style = Style::new(seed);
    let mut r = Rng::derive(seed, 1);
    let score = compose(&style, &mut r, n as f64 / sr);

    let channels = if stereo { 2 } else { 1 };
    let mut out = vec![0.0f32; n * channels];
    let mut scratch = vec![0.0f32; n];
    let a4 = f64::from(style.info.a4_hz);
    for (track, mix) in style.mix.iter().enumerate() {
        scratch.fill(0.0);
        match track {
            0 => render_notes(&mut scratch, sr, a4, &score.lead, &style.lead),
            1 => render_notes(&mut scratch, sr, a4, &score.pad, &style.pad),
            2 => render_notes(&mut scratch, sr, a4, &score.bass, &style.bass),
            3 => render_kicks(&mut scratch, sr, &score.kick, &style.kit),
            4 => render_snares(&mut scratch, sr, &score.snare, &style.kit),
            _ => render_hats(&mut scratch, sr, &score.hat, &style.kit),
        }
        mix_into(&mut out, &scratch, mix, stereo, sr);
    }
    let peak = out.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    if peak > 0.0 && peak.is_finite() {
        let g = PEAK_LEVEL / peak;
        for x in &mut out {
            *x *= g;
        }
    }
    out
}

fn mix_into(out: &mut [f32], track: &[f32], m: &TrackMix, stereo: bool, sr: f64) {
    if !stereo {
        for (o, &x) in out.iter_mut().zip(track) {
            *o += m.gain * x;
        }
        return;
    }
    let gl = m.gain * (1.0 - m.pan).sqrt();
    let gr = m.gain * (1.0 + m.pan).sqrt();
    let d = (m.delay_r * sr).round() as usize;
    for (i, frame) in out.chunks_exact_mut(2).enumerate() {
        frame[0] += gl * track[i];
        if i >= d {
            frame[1] += gr * track[i - d];
        }
    }
}

/// Additive synthesis of `notes` with timbre `tim`, added into `buf`.
fn render_notes(buf: &mut [f32], sr: f64, a4: f64, notes: &[Note], tim: &Timbre) {
    let attack_n = (tim.attack * sr).max(1.0);
    let inv_attack = 1.0 / attack_n;
    let attack_end = attack_n.ceil() as usize;
    let dec_r = (-1.0 / (tim.decay * sr)).exp();
    // Release: -60 dB after `release` seconds.
    let rel_r = ((1e-3f64).ln() / (tim.release * sr)).exp();
    let tail_n = (tim.release * sr).ceil() as usize;
    let sus = tim.sustain;
    let max_f = 0.45 * sr;

    let mut damp = [1.0f64; MAX_HARM];
    for (k, d) in damp.iter_mut().enumerate() {
        *d = (-tim.bright * k as f64 / sr).exp();
    }

    for note in notes {
        let start = (note.t * sr).round() as usize;
        if start >= buf.len() {
            continue;
        }
        let on_n = ((note.dur * sr).round() as usize).max(1);
        let end = (start + on_n + tail_n).min(buf.len());
        let f0 = a4 * ((note.midi - 69.0) / 12.0).exp2();

        // Per-harmonic rotating phasors: (c, s) rotated by (cw, sw) each sample.
        let mut c = [0.0f64; MAX_HARM];
        let mut s = [0.0f64; MAX_HARM];
        let mut cw = [1.0f64; MAX_HARM];
        let mut sw = [0.0f64; MAX_HARM];
        let mut amp = [0.0f64; MAX_HARM];
        let mut nh = 0;
        for k in 0..tim.n_harm {
            let h = (k + 1) as f64;
            let f = h * f0 * (1.0 + tim.inharm * h * h).sqrt();
            if f >= max_f {
                break;
            }
            let w = TAU * f / sr;
            // Start each harmonic at a fixed but different phase (less peaky waveforms).
            let ph = 0.7 * k as f64;
            c[k] = ph.cos();
            s[k] = ph.sin();
            cw[k] = w.cos();
            sw[k] = w.sin();
            amp[k] = tim.amps[k] * note.vel;
            nh = k + 1;
        }
        if nh == 0 {
            continue;
        }

        let mut x = 1.0f64; // decay state
        let mut rel = 1.0f64; // release state
        for (i, o) in buf[start..end].iter_mut().enumerate() {
            let mut env = if i < attack_end {
                i as f64 * inv_attack
            } else {
                x *= dec_r;
                sus + (1.0 - sus) * x
            };
            if i >= on_n {
                rel *= rel_r;
                env *= rel;
            }
            let mut acc = 0.0f64;
            for k in 0..nh {
                let (ck, sk) = (c[k], s[k]);
                c[k] = ck * cw[k] - sk * sw[k];
                s[k] = ck * sw[k] + sk * cw[k];
                acc += s[k] * amp[k];
                amp[k] *= damp[k];
            }
            *o += (acc * env) as f32;
        }
    }
}

/// RBJ biquad filter (transposed direct form II).
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
    z1: f64,
    z2: f64,
}

impl Biquad {
    fn from_raw(b: [f64; 3], a: [f64; 3]) -> Self {
        Self {
            b0: b[0] / a[0],
            b1: b[1] / a[0],
            b2: b[2] / a[0],
            a1: a[1] / a[0],
            a2: a[2] / a[0],
            z1: 0.0,
            z2: 0.0,
        }
    }

    /// Band-pass with 0 dB peak gain.
    fn bandpass(f: f64, q: f64, sr: f64) -> Self {
        let w0 = TAU * f.min(0.42 * sr) / sr;
        let alpha = w0.sin() / (2.0 * q);
        Self::from_raw(
            [alpha, 0.0, -alpha],
            [1.0 + alpha, -2.0 * w0.cos(), 1.0 - alpha],
        )
    }

    fn highpass(f: f64, q: f64, sr: f64) -> Self {
        let w0 = TAU * f.min(0.42 * sr) / sr;
        let alpha = w0.sin() / (2.0 * q);
        let cw = w0.cos();
        Self::from_raw(
            [(1.0 + cw) / 2.0, -(1.0 + cw), (1.0 + cw) / 2.0],
            [1.0 + alpha, -2.0 * cw, 1.0 - alpha],
        )
    }

    fn process(&mut self, x: f64) -> f64 {
        let y = self.b0 * x + self.z1;
        self.z1 = self.b1 * x - self.a1 * y + self.z2;
        self.z2 = self.b2 * x - self.a2 * y;
        y
    }
}

/// Start sample and end sample (exclusive) of a drum hit of `len` samples.
fn hit_span(t: f64, sr: f64, len: usize, buf_len: usize) -> Option<(usize, usize)> {
    let start = (t * sr).round() as usize;
    (start < buf_len).then(|| (start, (start + len).min(buf_len)))
}

fn render_kicks(buf: &mut [f32], sr: f64, hits: &[Hit], kit: &DrumKit) {
    let pitch_r = (-1.0 / (kit.kick_pitch_tau * sr)).exp();
    let amp_r = (-1.0 / (kit.kick_amp_tau * sr)).exp();
    let len = ((kit.kick_amp_tau * 7.0).min(0.8) * sr) as usize;
    let click_n = (0.002 * sr).max(1.0);
    let k = TAU / sr;
    for h in hits {
        let Some((start, end)) = hit_span(h.t, sr, len, buf.len()) else {
            continue;
        };
        let mut noise = Rng::derive(kit.noise_seed, start as u64);
        let (mut phase, mut px, mut ax) = (0.0f64, 1.0f64, h.vel);
        for (i, o) in buf[start..end].iter_mut().enumerate() {
            let f = kit.kick_f_end + (kit.kick_f_start - kit.kick_f_end) * px;
            px *= pitch_r;
            phase += k * f;
            let mut y = phase.sin();
            let fi = i as f64;
            if fi < click_n {
                y += kit.kick_click * f64::from(noise.noise()) * (1.0 - fi / click_n);
            }
            *o += (y * ax) as f32;
            ax *= amp_r;
        }
    }
}

fn render_snares(buf: &mut [f32], sr: f64, hits: &[Hit], kit: &DrumKit) {
    let bp = Biquad::bandpass(kit.snare_bp_f, kit.snare_bp_q, sr);
    let hp = Biquad::highpass(kit.snare_hp_f, 0.7, sr);
    let noise_r = (-1.0 / (kit.snare_noise_tau * sr)).exp();
    let tone_r = (-1.0 / (kit.snare_tone_tau * sr)).exp();
    let len = (kit.snare_noise_tau.max(kit.snare_tone_tau) * 7.0 * sr) as usize;
    let w = TAU * kit.snare_tone_f.min(0.4 * sr) / sr;
    let (cw, sw) = (w.cos(), w.sin());
    for h in hits {
        let Some((start, end)) = hit_span(h.t, sr, len, buf.len()) else {
            continue;
        };
        let mut noise = Rng::derive(kit.noise_seed ^ 0x5EED, start as u64);
        let (mut bp, mut hp) = (bp, hp);
        let mut na = h.vel * (1.0 - kit.snare_tone_mix);
        let mut ta = h.vel * kit.snare_tone_mix * 1.5;
        let (mut c, mut s) = (1.0f64, 0.0f64);
        for o in &mut buf[start..end] {
            let n = f64::from(noise.noise());
            let noisy = 1.6 * bp.process(n) + 0.5 * hp.process(n);
            let (c0, s0) = (c, s);
            c = c0 * cw - s0 * sw;
            s = c0 * sw + s0 * cw;
            *o += (noisy * na + s * ta) as f32;
            na *= noise_r;
            ta *= tone_r;
        }
    }
}

fn render_hats(buf: &mut [f32], sr: f64, hits: &[Hit], kit: &DrumKit) {
    let hp = Biquad::highpass(kit.hat_f, kit.hat_q, sr);
    for h in hits {
        let tau = if h.open {
            kit.hat_open_tau
        } else {
            kit.hat_tau
        };
        let len = (tau * 7.0 * sr) as usize;
        let Some((start, end)) = hit_span(h.t, sr, len, buf.len()) else {
            continue;
        };
        let mut noise = Rng::derive(kit.noise_seed ^ 0x4A7, start as u64);
        let mut hp = hp;
        let r = (-1.0 / (tau * sr)).exp();
        let mut a = h.vel * 1.5;
        for o in &mut buf[start..end] {
            *o += (hp.process(f64::from(noise.noise())) * a) as f32;
            a *= r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::distort::rms;
    use realfft::RealFftPlanner;

    /// Log band energies per frame, each band z-scored over time.
    fn band_profile(x: &[f32], sr: u32) -> Vec<Vec<f64>> {
        let n = 2048;
        let hop = 1024;
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(n);
        let mut input = fft.make_input_vec();
        let mut spec = fft.make_output_vec();
        let n_bands = 24;
        let edges: Vec<usize> = (0..=n_bands)
            .map(|b| {
                let f = 80.0 * (8000.0f64 / 80.0).powf(b as f64 / n_bands as f64);
                ((f / f64::from(sr) * n as f64) as usize).min(n / 2)
            })
            .collect();
        let mut bands = vec![Vec::new(); n_bands];
        let mut pos = 0;
        while pos + n <= x.len() {
            for (i, v) in input.iter_mut().enumerate() {
                let w = 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos();
                *v = x[pos + i] * w as f32;
            }
            fft.process(&mut input, &mut spec).expect("fft");
            for b in 0..n_bands {
                let e: f64 = spec[edges[b]..edges[b + 1].max(edges[b] + 1)]
                    .iter()
                    .map(|c| f64::from(c.norm_sqr()))
                    .sum();
                bands[b].push((e + 1e-9).ln());
            }
            pos += hop;
        }
        for band in &mut bands {
            let m = band.iter().sum::<f64>() / band.len() as f64;
            let sd = (band.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / band.len() as f64)
                .sqrt()
                .max(1e-9);
            for v in band.iter_mut() {
                *v = (*v - m) / sd;
            }
        }
        bands
    }

    /// Mean over bands of the temporal correlation between two profiles.
    fn profile_corr(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
        let mut total = 0.0;
        for (x, y) in a.iter().zip(b) {
            let n = x.len().min(y.len());
            total += x[..n].iter().zip(&y[..n]).map(|(p, q)| p * q).sum::<f64>() / n as f64;
        }
        total / a.len() as f64
    }

    fn corr(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len().min(b.len());
        let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            let (x, y) = (f64::from(a[i]), f64::from(b[i]));
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa * bb).sqrt().max(1e-12)
    }

    #[test]
    fn deterministic() {
        let a = song(7, 4.0, 22_050);
        let b = song(7, 4.0, 22_050);
        assert_eq!(a, b);
        assert_eq!(song_stereo(7, 2.0, 16_000), song_stereo(7, 2.0, 16_000));
        assert_eq!(song_info(7), song_info(7));
    }

    #[test]
    fn lengths_and_edge_cases() {
        assert_eq!(song(1, 2.5, 8_000).len(), 20_000);
        assert_eq!(song_stereo(1, 2.5, 8_000).len(), 40_000);
        assert!(song(1, 0.0, 44_100).is_empty());
        assert!(song(1, -1.0, 44_100).is_empty());
        assert!(song(1, f32::NAN, 44_100).is_empty());
        assert!(song(1, 1.0, 0).is_empty());
        let tiny = song(3, 0.001, 44_100);
        assert_eq!(tiny.len(), 44);
        assert!(tiny.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn levels_are_sane() {
        for seed in 0..12u64 {
            let x = song(seed, 12.0, 22_050);
            assert!(x.iter().all(|v| v.is_finite()), "seed {seed}: NaN/inf");
            let peak = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            assert!(
                peak <= 1.0 && (peak - PEAK_LEVEL).abs() < 1e-4,
                "seed {seed}: peak {peak}"
            );
            let level = rms(&x);
            assert!(level > 0.05 && level < 0.5, "seed {seed}: rms {level}");
            // No long silences: every second has some signal.
            for (i, sec) in x.chunks(22_050).enumerate() {
                assert!(rms(sec) > 0.01, "seed {seed}: second {i} nearly silent");
            }
        }
    }

    #[test]
    fn stereo_matches_mono_music() {
        let seed = 11;
        let mono = song(seed, 8.0, 22_050);
        let st = song_stereo(seed, 8.0, 22_050);
        assert_eq!(st.len(), 2 * mono.len());
        assert!(st.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        let left: Vec<f32> = st.iter().step_by(2).copied().collect();
        let right: Vec<f32> = st.iter().skip(1).step_by(2).copied().collect();
        assert_ne!(left, right);
        let mid: Vec<f32> = left.iter().zip(&right).map(|(l, r)| l + r).collect();
        let c = corr(&mid, &mono);
        assert!(c > 0.9, "mid/mono correlation {c}");
    }

    #[test]
    fn shorter_render_is_prefix_up_to_gain() {
        let long = song(5, 12.0, 16_000);
        let short = song(5, 6.0, 16_000);
        let c = corr(&short, &long[..short.len()]);
        assert!(c > 0.999_999, "prefix correlation {c}");
    }

    #[test]
    fn params_differ_between_seeds() {
        let infos: Vec<SongInfo> = (0..20).map(song_info).collect();
        for i in 0..infos.len() {
            for j in i + 1..infos.len() {
                assert!(
                    (infos[i].tempo_bpm - infos[j].tempo_bpm).abs() > 1e-3,
                    "seeds {i} and {j} share a tempo"
                );
            }
            assert!((70.0..170.0).contains(&infos[i].tempo_bpm));
            assert!(infos[i].tuning_cents.abs() <= 40.0);
        }
        let keys: std::collections::HashSet<u8> = infos.iter().map(|i| i.key_root).collect();
        let scales: std::collections::HashSet<&str> = infos.iter().map(|i| i.scale).collect();
        assert!(keys.len() >= 5 && scales.len() >= 4);
    }

    #[test]
    fn different_seeds_sound_different() {
        let sr = 22_050;
        let profiles: Vec<_> = (100..106u64)
            .map(|s| band_profile(&song(s, 15.0, sr), sr))
            .collect();
        let same = profile_corr(&profiles[0], &band_profile(&song(100, 15.0, sr), sr));
        assert!(same > 0.99, "self correlation {same}");
        for i in 0..profiles.len() {
            for j in i + 1..profiles.len() {
                let c = profile_corr(&profiles[i], &profiles[j]);
                assert!(
                    c.abs() < 0.25,
                    "seeds {i} and {j}: spectral correlation {c}"
                );
            }
        }
    }

    #[test]
    fn bars_are_not_exact_copies() {
        let sr = 16_000;
        for seed in [1u64, 2, 3] {
            let info = song_info(seed);
            let x = song(seed, 30.0, sr);
            let bar = (info.bar_secs() * sr as f32).round() as usize;
            let bars: Vec<&[f32]> = x.chunks_exact(bar).take(12).collect();
            for i in 0..bars.len() {
                for j in i + 1..bars.len() {
                    let c = corr(bars[i], bars[j]);
                    assert!(
                        c < 0.97,
                        "seed {seed}: bars {i} and {j} nearly identical ({c})"
                    );
                }
            }
        }
    }

    #[test]
    fn a_song_has_the_length_and_level_asked_for() {
        let x = song(1234, 30.0, 44_100);
        assert_eq!(x.len(), 1_323_000);
        let level = rms(&x);
        assert!((0.05..0.5).contains(&level), "rms {level}");
    }
}
