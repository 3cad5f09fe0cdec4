//! Tiny deterministic pseudo-random number generator (SplitMix64) for the test kit.

/// SplitMix64 generator: fast, tiny, statistically good enough for audio synthesis.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed` (any value, including 0, is fine).
    ///
    /// The seed is scrambled first (MurmurHash3's 64-bit finaliser, a bijection) so that
    /// small consecutive seeds (0, 1, 2, ...) give unrelated streams.
    pub(crate) fn new(seed: u64) -> Self {
        let mut z = seed ^ 0x2545_F491_4F6C_DD1D;
        z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        z = (z ^ (z >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        Self {
            state: z ^ (z >> 33),
        }
    }

    /// An independent stream derived from `seed` and a stream label.
    pub(crate) fn derive(seed: u64, stream: u64) -> Self {
        let mut a = Rng::new(seed);
        let mut b = Rng::new(stream ^ 0x6A09_E667_F3BC_C909);
        Rng::new(a.next_u64() ^ b.next_u64().rotate_left(17))
    }

    /// Next raw 64-bit value.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub(crate) fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `[lo, hi)`, as f64.
    pub(crate) fn range64(&mut self, lo: f32, hi: f32) -> f64 {
        f64::from(self.range(lo, hi))
    }

    /// Uniform integer in `0..n` (0 when `n == 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// `true` with probability `p`.
    pub(crate) fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// Index drawn with probability proportional to `weights` (non-negative).
    pub(crate) fn weighted(&mut self, weights: &[f32]) -> usize {
        let total: f32 = weights.iter().sum();
        if weights.is_empty() || total <= 0.0 {
            return 0;
        }
        let mut x = self.unit() * total;
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// Uniform noise sample in `[-1, 1)`.
    pub(crate) fn noise(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (2.0 / 16_777_216.0) - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
            let n = a.noise();
            assert!((-1.0..1.0).contains(&n));
            assert!(a.below(7) < 7);
            b.unit();
            b.noise();
            b.below(7);
        }
        assert_eq!(Rng::new(3).below(0), 0);
        assert_ne!(Rng::derive(1, 2).next_u64(), Rng::derive(1, 3).next_u64());
    }

    #[test]
    fn consecutive_seeds_are_uncorrelated() {
        // For each of the first outputs, values across seeds 0..2000 must be uniform.
        for k in 0..6 {
            let mut bins = [0usize; 10];
            for seed in 0..2000u64 {
                let mut r = Rng::new(seed);
                for _ in 0..k {
                    r.next_u64();
                }
                bins[(r.unit() * 10.0) as usize] += 1;
            }
            assert!(
                bins.iter().all(|&b| (130..=270).contains(&b)),
                "output {k}: {bins:?}"
            );
        }
    }

    #[test]
    fn weighted_respects_weights() {
        let mut r = Rng::new(9);
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            counts[r.weighted(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[2] > 2 * counts[0]);
    }
}
