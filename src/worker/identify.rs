//! Identifying a file or a clip ([`Request::IdentifyFile`](super::Request::IdentifyFile),
//! [`Request::IdentifyClip`](super::Request::IdentifyClip)): the answer with the evidence the
//! Results page plots ([`MatchReport`]): the hits of the best song and the histogram of their
//! offsets; for a long file (a recorded set), also its songs one by one.

use std::path::Path;
use std::time::Instant;

use super::Desk;
use super::protocol::{Event, JobId, MatchReport};
use crate::cancel::CancelToken;
use crate::engine::{AudioSource, EngineError};
use crate::index::unix_now;
use crate::library::{Answer, LONG_RECORDING_SECS, Library, LibraryError, MatchEvidence};

/// Width of the offset histogram's bins (about 8 frames: a clear spike, visible bars).
const HISTOGRAM_BIN_SECS: f64 = 0.25;

impl Desk {
    /// Sends a finished match, or why there is none.
    pub(super) fn send_report(&self, job: JobId, report: Result<MatchReport, LibraryError>) {
        match report {
            Ok(report) => self.sink.send(Event::Matches(Box::new(report))),
            Err(err) => self.sink.send(Event::IdentifyFailed {
                job,
                reason: err.to_string(),
            }),
        }
    }

    pub(super) fn identify_file(
        &self,
        library: &Library,
        job: JobId,
        path: &Path,
        cancel: &CancelToken,
    ) {
        let started = Instant::now();
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().to_string(),
        );
        let report = library.query_file(path, cancel).and_then(|answer| {
            let long = answer.identification.clip_secs >= LONG_RECORDING_SECS;
            let mut report = make_report(library, job, label, answer, started)?;
            if long {
                report.tracklist =
                    Some(library.tracklist(AudioSource::File(path), cancel, |_| {})?);
                report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            }
            Ok(report)
        });
        match report {
            Ok(report) => self.send_report(job, Ok(report)),
            Err(LibraryError::Engine(EngineError::Cancelled)) => {
                self.sink.send(Event::IdentifyCancelled { job });
            }
            Err(err) => self.sink.send(Event::IdentifyFailed {
                job,
                reason: err.to_string(),
            }),
        }
    }

    pub(super) fn identify_clip(
        &self,
        library: &Library,
        job: JobId,
        samples: &[f32],
        sample_rate_hz: u32,
        label: String,
    ) {
        let started = Instant::now();
        let report = library
            .query_recording(samples, sample_rate_hz)
            .and_then(|answer| make_report(library, job, label, answer, started));
        self.send_report(job, report);
    }
}

/// Gathers the evidence of an answer for the plots.
pub(super) fn make_report(
    library: &Library,
    job: JobId,
    label: String,
    answer: Answer,
    started: Instant,
) -> Result<MatchReport, LibraryError> {
    let Answer {
        identification,
        fingerprint,
    } = answer;
    let best = identification
        .matches
        .first()
        .or(identification.best_rejected.as_ref())
        .map(|best| (best.song.id, best.offset_secs));
    let evidence = match best {
        Some((song_id, offset_secs)) => library.evidence(&fingerprint, song_id, offset_secs)?,
        None => MatchEvidence::default(),
    };
    let offset_histogram = offset_histogram(&evidence, HISTOGRAM_BIN_SECS);
    Ok(MatchReport {
        job,
        label,
        clip_secs: fingerprint.duration_secs,
        identification,
        evidence,
        offset_histogram,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        finished_at_unix_secs: unix_now(),
        tracklist: None,
    })
}

/// Counts (song time − clip time) of the hits in bins of `bin_secs`: (bin centre, count).
pub fn offset_histogram(evidence: &MatchEvidence, bin_secs: f64) -> Vec<(f64, u32)> {
    if bin_secs <= 0.0 {
        return Vec::new();
    }
    let mut bins: std::collections::BTreeMap<i64, u32> = std::collections::BTreeMap::new();
    for &(clip_secs, song_secs) in &evidence.hits {
        let bin = ((song_secs - clip_secs) / bin_secs).round() as i64;
        *bins.entry(bin).or_default() += 1;
    }
    bins.into_iter()
        .map(|(bin, count)| (bin as f64 * bin_secs, count))
        .collect()
}
