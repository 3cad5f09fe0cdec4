//! The analysis's hot loops, run with the widest vector instructions the CPU has.
//!
//! The crate is compiled for baseline x86-64, whose vectors hold four `f32`. The decimators,
//! the STFT's windowing and unpacking and the peak picker's maxima are loops over whole frames
//! that the compiler vectorises; given AVX2 they take eight at a time. rustfft and blake3
//! already choose AVX at run time; [`dispatch`] does the same for these loops through
//! [`pulp`], which detects the CPU's features once and runs the work compiled for them,
//! without `unsafe` here.
//!
//! A loop gets the wider vectors only when all of it is inlined into the dispatched call: the
//! work is a [`pulp::WithSimd`] value whose `with_simd` is `#[inline(always)]` and calls
//! functions that are `#[inline(always)]` too. The results are bit for bit those of the
//! baseline: the same operations in the same order on each lane, and no fused multiply-adds
//! (the compiler never contracts float operations on its own). `audiofp bench` checks that on
//! every run (`bench::same_peaks_as_baseline`).

use std::cell::Cell;

pub(crate) use pulp::{Simd, WithSimd};

thread_local! {
    /// Whether dispatched work on this thread runs compiled for the baseline only.
    static BASELINE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` compiled for the best instruction set this CPU has (AVX2 and FMA on most
/// x86-64 machines since 2013; the baseline otherwise, on other architectures, and inside
/// [`on_baseline`]).
#[inline]
pub(crate) fn dispatch<Work: WithSimd>(work: Work) -> Work::Output {
    if BASELINE_ONLY.get() {
        pulp::Scalar::new().vectorize(work)
    } else {
        pulp::Arch::new().dispatch(work)
    }
}

/// Runs `f` with the dispatched loops on this thread compiled for the baseline instruction
/// set.
pub fn on_baseline<R>(f: impl FnOnce() -> R) -> R {
    let before = BASELINE_ONLY.replace(true);
    let result = f();
    BASELINE_ONLY.set(before);
    result
}

/// The instruction set dispatched loops run with on this thread: "AVX2" or "baseline".
pub fn instruction_set() -> &'static str {
    struct Probe;
    impl WithSimd for Probe {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _simd: S) -> usize {
            std::mem::size_of::<S::f32s>()
        }
    }
    if dispatch(Probe) >= 32 {
        "AVX2"
    } else {
        "baseline"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_baseline_runs_the_baseline_on_this_thread_only() {
        let wide = instruction_set();
        assert_eq!(on_baseline(instruction_set), "baseline");
        assert_eq!(instruction_set(), wide);
        std::thread::scope(|scope| {
            on_baseline(|| {
                let other = scope.spawn(instruction_set).join().ok();
                assert_eq!(other, Some(wide));
            });
        });
    }
}
