//! Combinatorial landmark hashes (Wang 2003): each anchor peak is paired with the first
//! `fan_value` later peaks inside its target zone, and each pair is packed into a fixed-width key.
//!
//! Key layout (23 bits, low to high):
//!
//! | bits | field | range |
//! |---|---|---|
//! | 0..6 | `dt`: target frame - anchor frame | 1..=63 |
//! | 6..14 | `dbin + 128`: target bin - anchor bin, offset | 1..=255 |
//! | 14..23 | anchor bin (relative to the band start) | 0..=511 |
//!
//! The landmark's time is the anchor's frame.

use super::peaks::Peak;

/// Bits of the `dt` field.
pub const DT_BITS: u32 = 6;
/// Bits of the `dbin` field.
pub const DBIN_BITS: u32 = 8;
/// Bits of the anchor-bin field.
pub const BIN_BITS: u32 = 9;
/// Total key width.
pub const KEY_BITS: u32 = DT_BITS + DBIN_BITS + BIN_BITS;
/// Number of distinct keys.
pub const KEY_SPACE: usize = 1 << KEY_BITS;
/// Widest analysis band the layout can hold.
pub const MAX_BAND_BINS: usize = 1 << BIN_BITS;
const DBIN_OFFSET: i32 = 1 << (DBIN_BITS - 1);

/// A hash and the frame of its anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Landmark {
    /// Packed key (see the module docs).
    pub key: u32,
    /// Anchor frame.
    pub frame: u32,
}

/// Packs an anchor bin, a bin difference and a frame difference into a key.
///
/// Callers keep `anchor_bin < 512`, `|dbin| <= 127` and `1 <= dt <= 63`.
pub fn pack_key(anchor_bin: u16, dbin: i32, dt: u32) -> u32 {
    let dbin_field = (dbin + DBIN_OFFSET) as u32 & ((1 << DBIN_BITS) - 1);
    (u32::from(anchor_bin) & ((1 << BIN_BITS) - 1)) << (DT_BITS + DBIN_BITS)
        | dbin_field << DT_BITS
        | (dt & ((1 << DT_BITS) - 1))
}

/// Inverse of [`pack_key`]: (anchor bin, bin difference, frame difference).
pub fn unpack_key(key: u32) -> (u16, i32, u32) {
    let dt = key & ((1 << DT_BITS) - 1);
    let dbin = ((key >> DT_BITS) & ((1 << DBIN_BITS) - 1)) as i32 - DBIN_OFFSET;
    let bin = (key >> (DT_BITS + DBIN_BITS)) as u16;
    (bin, dbin, dt)
}

/// The target zone and fan-out used to pair peaks.
#[derive(Clone, Copy, Debug)]
pub struct PairingRule {
    /// Targets per anchor.
    pub fan_value: usize,
    /// Longest anchor-target distance in frames (<= 63).
    pub max_delta_frames: u32,
    /// Largest anchor-target distance in bins (<= 127).
    pub max_delta_bins: u32,
    /// Also emit the keys with `dt ± 1` (query side): a clip's frame grid is shifted by a
    /// fraction of a hop against the song's, so a peak can land one frame early or late.
    pub dt_tolerance: bool,
}

/// Appends the landmarks of `peaks` (sorted by frame, then bin) to `out`.
pub fn landmarks(peaks: &[Peak], rule: PairingRule, out: &mut Vec<Landmark>) {
    for_each_landmark(peaks, rule, |landmark| out.push(landmark));
}

/// Calls `visit` with each landmark of `peaks` (sorted by frame, then bin), in the order
/// [`landmarks`] lists them, without collecting them.
#[inline]
pub fn for_each_landmark(peaks: &[Peak], rule: PairingRule, mut visit: impl FnMut(Landmark)) {
    for (i, anchor) in peaks.iter().enumerate() {
        let mut paired = 0;
        for target in &peaks[i + 1..] {
            if target.frame == anchor.frame {
                continue;
            }
            let dt = target.frame - anchor.frame;
            if dt > rule.max_delta_frames {
                break;
            }
            let dbin = i32::from(target.bin) - i32::from(anchor.bin);
            if dbin.unsigned_abs() > rule.max_delta_bins {
                continue;
            }
            visit(Landmark {
                key: pack_key(anchor.bin, dbin, dt),
                frame: anchor.frame,
            });
            if rule.dt_tolerance {
                for near in [dt - 1, dt + 1] {
                    if (1..=rule.max_delta_frames).contains(&near) {
                        visit(Landmark {
                            key: pack_key(anchor.bin, dbin, near),
                            frame: anchor.frame,
                        });
                    }
                }
            }
            paired += 1;
            if paired == rule.fan_value {
                break;
            }
        }
    }
}

/// `landmarks` in their order (key, then frame). Landmarks come in frame order, as
/// [`landmarks`] makes them; a stable radix sort by key alone (two passes over [`KEY_BITS`]) then
/// orders them in a few times less than a comparison sort of a 10 s query's ten thousand.
/// Landmarks in another order are sorted by comparison.
pub fn sorted(landmarks: &[Landmark]) -> Vec<Landmark> {
    const PASSES: u32 = 2;
    const BITS_PER_PASS: u32 = KEY_BITS.div_ceil(PASSES);
    const BUCKETS: usize = 1 << BITS_PER_PASS;
    let mut sorted = landmarks.to_vec();
    let radix_sortable = landmarks.len() >= 256
        && u32::try_from(landmarks.len()).is_ok()
        && landmarks.is_sorted_by_key(|l| l.frame)
        && landmarks.iter().all(|l| l.key < KEY_SPACE as u32);
    if !radix_sortable {
        sorted.sort_unstable();
        return sorted;
    }
    let bucket = |l: &Landmark, pass: u32| (l.key >> (pass * BITS_PER_PASS)) as usize % BUCKETS;
    let mut other = sorted.clone();
    for pass in 0..PASSES {
        let mut next = vec![0u32; BUCKETS];
        for l in &sorted {
            next[bucket(l, pass)] += 1;
        }
        let mut start = 0;
        for slot in next.iter_mut() {
            let size = *slot;
            *slot = start;
            start += size;
        }
        debug_assert_eq!(start as usize, landmarks.len());
        for l in &sorted {
            let b = bucket(l, pass);
            other[next[b] as usize] = *l;
            next[b] += 1;
        }
        std::mem::swap(&mut sorted, &mut other);
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip_over_the_whole_range() {
        for bin in [0u16, 1, 255, 511] {
            for dbin in [-127, -1, 0, 1, 127] {
                for dt in [1u32, 2, 31, 63] {
                    let key = pack_key(bin, dbin, dt);
                    assert!(key < KEY_SPACE as u32);
                    assert_eq!(unpack_key(key), (bin, dbin, dt));
                }
            }
        }
    }

    #[test]
    fn sorted_orders_as_a_comparison_sort_does() {
        let mut state = 0x9E37_79B9_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        // In frame order (as made), with repeated keys and repeated landmarks; then shuffled.
        let mut made: Vec<Landmark> = (0..5000)
            .map(|i| Landmark {
                key: next() % (KEY_SPACE as u32) / if i % 7 == 0 { 4096 } else { 1 },
                frame: i / 12,
            })
            .collect();
        made.extend_from_within(100..200);
        made.sort_by_key(|l| l.frame);
        let mut expected = made.clone();
        expected.sort();
        assert_eq!(sorted(&made), expected);
        let mut shuffled = made.clone();
        shuffled.reverse();
        assert_eq!(sorted(&shuffled), expected);
        let few = &made[..10];
        let mut few_expected = few.to_vec();
        few_expected.sort();
        assert_eq!(sorted(few), few_expected);
    }

    #[test]
    fn pairs_follow_fan_out_and_zone() {
        let peaks = [
            Peak { frame: 0, bin: 100 },
            Peak { frame: 0, bin: 300 }, // same frame: never a target of the first
            Peak { frame: 2, bin: 110 },
            Peak { frame: 3, bin: 400 }, // 300 bins away from the first: outside its zone
            Peak { frame: 5, bin: 90 },
            Peak {
                frame: 70,
                bin: 100,
            }, // too late for everyone before frame 7
        ];
        let rule = PairingRule {
            fan_value: 2,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        };
        let mut out = Vec::new();
        landmarks(&peaks, rule, &mut out);
        let first: Vec<_> = out
            .iter()
            .filter(|l| l.frame == 0 && unpack_key(l.key).0 == 100)
            .collect();
        assert_eq!(first.len(), 2);
        assert_eq!(unpack_key(first[0].key), (100, 10, 2));
        assert_eq!(unpack_key(first[1].key), (100, -10, 5));
        assert!(out.iter().all(|l| unpack_key(l.key).2 <= 63));
    }
}
