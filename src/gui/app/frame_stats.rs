//! Frame-time statistics of the desktop app, for a person checking that the frame loop never
//! waits on work (`AUDIOFP_FRAME_STATS=1`).

use std::time::{Duration, Instant};

/// Frame-time statistics (`AUDIOFP_FRAME_STATS=1`), logged to stderr every 5 seconds, and
/// for each whole indexing run when it ends: the app's own `ui()` work; the frame time as
/// eframe measures it (`ui()`, tessellation and painting, without waiting for the buffer
/// swap); and the interval from one frame to the next.
#[derive(Default)]
pub(super) struct FrameStats {
    window: FrameSamples,
    indexing: Option<FrameSamples>,
    last_frame: Option<Instant>,
    /// eframe's figure for the previous frame, set at the start of each frame.
    pub(super) previous_frame_cpu_ms: Option<f64>,
}

/// Frame samples over a span of time.
#[derive(Default)]
struct FrameSamples {
    started: Option<Instant>,
    ui_ms: Vec<f64>,
    frame_ms: Vec<f64>,
    interval_ms: Vec<f64>,
}

impl FrameSamples {
    fn push(&mut self, now: Instant, ui_ms: f64, frame_ms: Option<f64>, interval_ms: Option<f64>) {
        self.started.get_or_insert(now);
        self.ui_ms.push(ui_ms);
        self.frame_ms.extend(frame_ms);
        self.interval_ms.extend(interval_ms);
    }

    fn report(&mut self, what: &str, now: Instant) {
        let secs = self
            .started
            .map_or(0.0, |s| now.duration_since(s).as_secs_f64());
        let ui = summary(&mut self.ui_ms);
        let frame = summary(&mut self.frame_ms);
        let interval = summary(&mut self.interval_ms);
        eprintln!(
            "frame stats {what}: {} frames in {secs:.1} s; ui() median {:.2} ms, p95 {:.2} ms, \
             max {:.2} ms; frame time median {:.2} ms, p95 {:.2} ms, max {:.2} ms; \
             frame interval median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            self.ui_ms.len(),
            ui.0,
            ui.1,
            ui.2,
            frame.0,
            frame.1,
            frame.2,
            interval.0,
            interval.1,
            interval.2
        );
    }
}

impl FrameStats {
    pub(super) fn record(&mut self, ui_time: Duration, indexing: bool) {
        let now = Instant::now();
        let ui_ms = ui_time.as_secs_f64() * 1000.0;
        let interval_ms = self
            .last_frame
            .map(|last| now.duration_since(last).as_secs_f64() * 1000.0);
        self.last_frame = Some(now);
        let frame_ms = self.previous_frame_cpu_ms.take();
        self.window.push(now, ui_ms, frame_ms, interval_ms);
        match (&mut self.indexing, indexing) {
            (Some(run), true) => run.push(now, ui_ms, frame_ms, interval_ms),
            (None, true) => {
                let mut run = FrameSamples::default();
                run.push(now, ui_ms, None, None);
                self.indexing = Some(run);
            }
            (Some(run), false) => {
                run.report("while indexing (whole run)", now);
                self.indexing = None;
            }
            (None, false) => {}
        }
        if self
            .window
            .started
            .is_some_and(|s| now.duration_since(s) >= Duration::from_secs(5))
        {
            let what = if indexing {
                "(last 5 s, indexing)"
            } else {
                "(last 5 s)"
            };
            self.window.report(what, now);
            self.window = FrameSamples::default();
        }
    }
}

/// (median, p95, max) of the values (sorts them).
fn summary(values: &mut [f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), at(1.0))
}
