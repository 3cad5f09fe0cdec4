//! Overlapping windows of a long recording (a DJ set, a radio show), each a clip of its own.
//!
//! A recording that holds several songs cannot be matched as one clip: the matcher places a
//! clip's start inside one song (a song that starts later in the clip would need a start
//! before its own), and a clip of an hour is nothing the confidence model was fitted on. So
//! the recording is cut into windows of a clip's length that overlap by half, and each window
//! is analysed exactly as a clip a user gives is (its own peaks and contrast map).
//!
//! Decoding streams: only the current window's samples are held, whatever the recording's
//! length. Windows start every `hop` seconds; the last one ends where the recording does, so
//! every second is in some window. A recording shorter than a window is one window. When the
//! sample rate changes (a chained Ogg stream), the windows start again from the new link.

use super::decode::{self, AudioSource, CutStreams};
use super::error::EngineError;
use crate::cancel::CancelToken;

/// Window length and spacing, seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowPlan {
    /// Length of each window.
    pub window_secs: f64,
    /// Seconds between the starts of two windows.
    pub hop_secs: f64,
}

/// One window handed to the caller.
#[derive(Debug)]
pub struct Window<'a> {
    /// Where the window starts in the recording, seconds.
    pub start_secs: f64,
    /// Its mono samples.
    pub samples: &'a [f32],
    /// Their rate.
    pub sample_rate_hz: u32,
}

/// Decodes `source` and calls `on_window` for each window of `plan`, in time order. Returns
/// the recording's length in seconds.
pub fn for_each_window(
    source: AudioSource<'_>,
    plan: WindowPlan,
    cancel: &CancelToken,
    mut on_window: impl FnMut(Window<'_>) -> Result<(), EngineError>,
) -> Result<f64, EngineError> {
    let mut cutter = Cutter::new(plan);
    decode::decode_mono(source, CutStreams::Accept, cancel, |chunk, rate| {
        cutter.push(chunk, rate, &mut on_window)
    })?;
    cutter.finish(&mut on_window)?;
    Ok(cutter.seconds_before_link + cutter.link_seconds())
}

/// Cuts a stream of mono chunks into windows.
struct Cutter {
    plan: WindowPlan,
    /// The current link's rate (0 before the first chunk).
    rate: u32,
    /// Seconds of the recording before the current link.
    seconds_before_link: f64,
    /// Samples of the current link not yet dropped: they start at sample `held_from`.
    held: Vec<f32>,
    held_from: usize,
    /// Start (sample of the link) of the next window to hand out.
    next_start: usize,
    /// End (sample of the link) of the last window handed out; 0 before the first.
    covered_to: usize,
}

impl Cutter {
    fn new(plan: WindowPlan) -> Self {
        Self {
            plan,
            rate: 0,
            seconds_before_link: 0.0,
            held: Vec::new(),
            held_from: 0,
            next_start: 0,
            covered_to: 0,
        }
    }

    fn window_len(&self) -> usize {
        ((self.plan.window_secs * f64::from(self.rate)).round() as usize).max(1)
    }

    fn hop_len(&self) -> usize {
        ((self.plan.hop_secs * f64::from(self.rate)).round() as usize).max(1)
    }

    /// Samples of the current link seen so far.
    fn link_len(&self) -> usize {
        self.held_from + self.held.len()
    }

    fn link_seconds(&self) -> f64 {
        if self.rate == 0 {
            return 0.0;
        }
        self.link_len() as f64 / f64::from(self.rate)
    }

    fn push(
        &mut self,
        chunk: &[f32],
        rate: u32,
        on_window: &mut impl FnMut(Window<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        if rate != self.rate {
            self.finish(on_window)?;
            self.seconds_before_link += self.link_seconds();
            self.rate = rate;
            self.held.clear();
            self.held_from = 0;
            self.next_start = 0;
            self.covered_to = 0;
        }
        self.held.extend_from_slice(chunk);
        let window = self.window_len();
        while self.next_start + window <= self.link_len() {
            self.hand_out(self.next_start, window, on_window)?;
            self.next_start += self.hop_len();
        }
        // Drop what no later window needs (the last window may end with the link, so the
        // last `window` samples stay), in large steps: the copy is then rare.
        let needed_from = self.next_start.min(self.link_len().saturating_sub(window));
        if needed_from - self.held_from > window {
            self.held.drain(..needed_from - self.held_from);
            self.held_from = needed_from;
        }
        Ok(())
    }

    /// Hands out what the windows so far left uncovered at the end of the current link: the
    /// link's last `window` seconds (or all of it, when shorter).
    fn finish(
        &mut self,
        on_window: &mut impl FnMut(Window<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let end = self.link_len();
        if self.rate == 0 || end == 0 || self.covered_to >= end {
            return Ok(());
        }
        let window = self.window_len().min(end);
        let start = (end - window).max(self.held_from);
        self.hand_out(start, end - start, on_window)
    }

    fn hand_out(
        &mut self,
        start: usize,
        len: usize,
        on_window: &mut impl FnMut(Window<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let from = start - self.held_from;
        self.covered_to = start + len;
        on_window(Window {
            start_secs: self.seconds_before_link + start as f64 / f64::from(self.rate),
            samples: &self.held[from..from + len],
            sample_rate_hz: self.rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (start, length, first sample) of each window of `chunks` (samples numbered from 0
    /// in each link), as (seconds, samples, value).
    fn windows_of(plan: WindowPlan, chunks: &[(usize, u32)]) -> (Vec<(f64, usize, f32)>, f64) {
        let mut cutter = Cutter::new(plan);
        let mut seen = Vec::new();
        let mut record = |w: Window<'_>| {
            seen.push((w.start_secs, w.samples.len(), w.samples[0]));
            Ok(())
        };
        let mut counters: std::collections::HashMap<u32, f32> = Default::default();
        let mut last_rate = 0;
        for &(len, rate) in chunks {
            if rate != last_rate {
                counters.insert(rate, 0.0);
                last_rate = rate;
            }
            let next = counters.get_mut(&rate).expect("counter");
            let chunk: Vec<f32> = (0..len).map(|i| *next + i as f32).collect();
            *next += len as f32;
            cutter.push(&chunk, rate, &mut record).expect("push");
        }
        cutter.finish(&mut record).expect("finish");
        let total = cutter.seconds_before_link + cutter.link_seconds();
        (seen, total)
    }

    const PLAN: WindowPlan = WindowPlan {
        window_secs: 10.0,
        hop_secs: 5.0,
    };

    #[test]
    fn windows_overlap_by_the_hop_and_the_last_ends_with_the_recording() {
        // 26 s at 100 Hz in uneven chunks.
        let chunks: Vec<(usize, u32)> = [700, 1, 999, 300, 600].map(|n| (n, 100)).to_vec();
        let (windows, total) = windows_of(PLAN, &chunks);
        assert_eq!(total, 26.0);
        assert_eq!(
            windows,
            vec![
                (0.0, 1000, 0.0),
                (5.0, 1000, 500.0),
                (10.0, 1000, 1000.0),
                (15.0, 1000, 1500.0),
                (16.0, 1000, 1600.0),
            ]
        );
    }

    #[test]
    fn a_recording_shorter_than_a_window_is_one_window() {
        let (windows, total) = windows_of(PLAN, &[(350, 100), (250, 100)]);
        assert_eq!(total, 6.0);
        assert_eq!(windows, vec![(0.0, 600, 0.0)]);
    }

    #[test]
    fn a_recording_of_whole_hops_gets_no_extra_window() {
        let (windows, _) = windows_of(PLAN, &[(2000, 100)]);
        assert_eq!(
            windows.iter().map(|w| w.0).collect::<Vec<_>>(),
            [0.0, 5.0, 10.0]
        );
    }

    #[test]
    fn a_new_sample_rate_starts_the_windows_again() {
        // 12 s at 100 Hz, then 8 s at 50 Hz.
        let (windows, total) = windows_of(PLAN, &[(1200, 100), (400, 50)]);
        assert_eq!(total, 20.0);
        assert_eq!(
            windows,
            vec![(0.0, 1000, 0.0), (2.0, 1000, 200.0), (12.0, 400, 0.0),]
        );
    }
}
