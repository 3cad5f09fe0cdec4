//! The inverted index saved to a file beside the database, so that a one-shot command (an
//! `audiofp identify` against a large library) loads it instead of rebuilding it from every
//! song's peaks.
//!
//! The file is a cache: it names the library state it was built from (a stamp the caller
//! computes from the store) and the pairing rule; a file of another rule or format, or one
//! that does not hold together, makes [`InvertedIndex::read_from`] answer `None` so the caller
//! rebuilds. A file of another library state is still returned, with each song's identity
//! (also computed by the caller), so that the caller can bring it up to date song by song.
//!
//! Layout (little-endian): magic `AFPOSTv3`, stamp (32 bytes), rule (4 x u32), frame
//! duration (f64), next base (u32), then length-prefixed arrays: key offsets (u32), postings
//! (u32), packed peaks (u32), spans (song id i64, base u32, frames u32, peaks start u64, peak
//! count u32, identity u64), the side list of songs added since the last merge (key u32, frame
//! u32; sorted) and the ids of removed songs (i64). Writing never merges: that would briefly
//! need a second copy of the key offsets and postings.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use super::{InvertedIndex, KEY_SPACE, PairingRule, SongSpan};

const MAGIC: &[u8; 8] = b"AFPOSTv3";

/// Bytes of one span in the file.
const SPAN_BYTES: u64 = 8 + 4 + 4 + 8 + 4 + 8;

/// Identifies the library state an index file was built from.
pub type Stamp = [u8; 32];

/// A saved index, whatever library state it was saved for.
pub struct SavedIndex {
    /// The index.
    pub index: InvertedIndex,
    /// The library state it was saved for.
    pub stamp: Stamp,
    /// The identity of each of `index.spans()`'s songs when it was saved (0 for a song removed
    /// since the last merge).
    pub identities: Vec<u64>,
}

fn rule_words(rule: PairingRule) -> [u32; 4] {
    [
        rule.fan_value as u32,
        rule.max_delta_frames,
        rule.max_delta_bins,
        u32::from(rule.dt_tolerance),
    ]
}

fn write_u32s(out: &mut impl Write, values: &[u32]) -> io::Result<()> {
    out.write_all(&(values.len() as u64).to_le_bytes())?;
    if cfg!(target_endian = "little") {
        out.write_all(bytemuck::cast_slice(values))
    } else {
        values
            .iter()
            .try_for_each(|v| out.write_all(&v.to_le_bytes()))
    }
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

/// Reads a length-prefixed `u32` array of at most `max_len` values (`None`: too long).
fn read_u32s(input: &mut impl Read, max_len: u64) -> io::Result<Option<Vec<u32>>> {
    let len = read_u64(input)?;
    if len > max_len {
        return Ok(None);
    }
    let mut values = vec![0u32; len as usize];
    input.read_exact(bytemuck::cast_slice_mut(&mut values))?;
    if cfg!(target_endian = "big") {
        for v in &mut values {
            *v = u32::from_le(*v);
        }
    }
    Ok(Some(values))
}

impl InvertedIndex {
    /// Writes the index (its side list sorted first, in place) for the library state `stamp`,
    /// with each song's `identity_of(song id)`.
    pub fn write_to(
        &mut self,
        out: &mut impl Write,
        stamp: &Stamp,
        identity_of: impl Fn(i64) -> u64,
    ) -> io::Result<()> {
        self.prepare();
        out.write_all(MAGIC)?;
        out.write_all(stamp)?;
        for word in rule_words(self.rule) {
            out.write_all(&word.to_le_bytes())?;
        }
        out.write_all(&self.frame_secs.to_le_bytes())?;
        out.write_all(&self.next_base.to_le_bytes())?;
        write_u32s(out, &self.offsets)?;
        write_u32s(out, &self.entries)?;
        write_u32s(out, &self.forward)?;
        out.write_all(&(self.spans.len() as u64).to_le_bytes())?;
        for span in &self.spans {
            out.write_all(&span.song_id.to_le_bytes())?;
            out.write_all(&span.base.to_le_bytes())?;
            out.write_all(&span.num_frames.to_le_bytes())?;
            out.write_all(&(span.peaks_start as u64).to_le_bytes())?;
            out.write_all(&span.peaks_len.to_le_bytes())?;
            let identity = if self.removed.contains(&span.song_id) {
                0
            } else {
                identity_of(span.song_id)
            };
            out.write_all(&identity.to_le_bytes())?;
        }
        let pending: Vec<u32> = self.pending.iter().flat_map(|&(k, f)| [k, f]).collect();
        write_u32s(out, &pending)?;
        let mut removed: Vec<i64> = self.removed.iter().copied().collect();
        removed.sort_unstable();
        out.write_all(&(removed.len() as u64).to_le_bytes())?;
        for id in removed {
            out.write_all(&id.to_le_bytes())?;
        }
        Ok(())
    }

    /// Reads an index written by [`write_to`](Self::write_to), paired with `rule`.
    /// `Ok(None)`: the file is of another rule or format, or does not hold together; `Err`: it
    /// could not be read.
    pub fn read_from(
        input: &mut impl Read,
        rule: PairingRule,
        frame_secs: f64,
        file_len: u64,
    ) -> io::Result<Option<SavedIndex>> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Ok(None);
        }
        let mut stamp = [0u8; 32];
        input.read_exact(&mut stamp)?;
        for word in rule_words(rule) {
            if read_u32(input)? != word {
                return Ok(None);
            }
        }
        if f64::from_bits(read_u64(input)?).to_bits() != frame_secs.to_bits() {
            return Ok(None);
        }
        let next_base = read_u32(input)?;
        // No array can be longer than the file: a damaged length must not allocate wildly.
        let max_len = file_len / 4;
        let Some(offsets) = read_u32s(input, max_len)? else {
            return Ok(None);
        };
        let Some(entries) = read_u32s(input, max_len)? else {
            return Ok(None);
        };
        let Some(forward) = read_u32s(input, max_len)? else {
            return Ok(None);
        };
        let span_count = read_u64(input)?;
        if span_count > file_len / SPAN_BYTES {
            return Ok(None);
        }
        let mut spans = Vec::with_capacity(span_count as usize);
        let mut identities = Vec::with_capacity(span_count as usize);
        for _ in 0..span_count {
            let song_id = read_u64(input)? as i64;
            let base = read_u32(input)?;
            let num_frames = read_u32(input)?;
            let peaks_start = read_u64(input)? as usize;
            let peaks_len = read_u32(input)?;
            identities.push(read_u64(input)?);
            spans.push(SongSpan {
                song_id,
                base,
                num_frames,
                peaks_start,
                peaks_len,
            });
        }
        let Some(pending) = read_u32s(input, max_len)? else {
            return Ok(None);
        };
        let pending: Vec<(u32, u32)> = pending.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let removed_count = read_u64(input)?;
        if removed_count > file_len / 8 {
            return Ok(None);
        }
        let mut removed = HashSet::new();
        for _ in 0..removed_count {
            removed.insert(read_u64(input)? as i64);
        }
        let index = InvertedIndex {
            offsets,
            entries,
            pending_sorted: pending.len(),
            pending,
            spans,
            removed,
            next_base,
            frame_secs,
            rule,
            forward,
        };
        Ok(index.is_consistent().then_some(SavedIndex {
            index,
            stamp,
            identities,
        }))
    }

    /// Whether the arrays agree with each other (what lookups rely on not to go out of bounds).
    fn is_consistent(&self) -> bool {
        // An index that was never merged has no main arrays at all.
        let never_merged = self.offsets.is_empty() && self.entries.is_empty();
        let offsets_ok = never_merged
            || self.offsets.len() == KEY_SPACE + 1
                && self.offsets.first() == Some(&0)
                && self.offsets.windows(2).all(|w| w[0] <= w[1])
                && self.offsets.last().map(|&l| l as usize) == Some(self.entries.len());
        let mut end = 0u64;
        let spans_ok = self.spans.iter().all(|span| {
            let in_order = u64::from(span.base) >= end;
            end = u64::from(span.base) + u64::from(span.num_frames);
            let peaks_end = span.peaks_start.checked_add(span.peaks_len as usize);
            in_order && peaks_end.is_some_and(|e| e <= self.forward.len())
        }) && end <= u64::from(self.next_base);
        let pending_ok = self.pending.windows(2).all(|w| w[0] <= w[1])
            && self
                .pending
                .iter()
                .all(|&(key, _)| (key as usize) < KEY_SPACE);
        offsets_ok && spans_ok && pending_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::peaks::Peak;

    fn rule() -> PairingRule {
        PairingRule {
            fan_value: 3,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        }
    }

    fn sample_index() -> InvertedIndex {
        // Songs 1-4 merged into the main arrays, song 5 in the side list, song 3 removed.
        let mut index = InvertedIndex::new(0.032, rule());
        for song in 0..5u32 {
            if song == 4 {
                index.merge();
            }
            let peaks: Vec<Peak> = (0..40)
                .map(|i| Peak {
                    frame: i * 3,
                    bin: ((i * 7 + song * 11) % 300) as u16,
                })
                .collect();
            index.add_song(i64::from(song) + 1, 130, &peaks).unwrap();
        }
        index.remove_song(3);
        index
    }

    fn postings(index: &InvertedIndex) -> Vec<Vec<u32>> {
        (0..KEY_SPACE as u32)
            .filter(|k| index.posting_len(*k) > 0)
            .map(|k| {
                let mut got = Vec::new();
                index.for_each_posting(k, |f| got.push(f));
                got
            })
            .collect()
    }

    #[test]
    fn round_trip_keeps_postings_spans_and_peaks() {
        let mut index = sample_index();
        let stamp = [7u8; 32];
        let mut bytes = Vec::new();
        index
            .write_to(&mut bytes, &stamp, |id| id as u64 * 1000)
            .unwrap();
        let len = bytes.len() as u64;
        let saved = InvertedIndex::read_from(&mut bytes.as_slice(), rule(), 0.032, len)
            .unwrap()
            .expect("a valid file");
        assert_eq!(saved.stamp, stamp);
        // Song 3 was removed: it has no identity.
        assert_eq!(saved.identities, [1000, 2000, 0, 4000, 5000]);
        let read = saved.index;
        assert_eq!(read.spans(), index.spans());
        assert_eq!(read.song_count(), 4);
        assert_eq!(postings(&read), postings(&index));
        let span = *read.span_of(5).unwrap();
        assert_eq!(
            read.song_peaks(&span).collect::<Vec<_>>(),
            index.song_peaks(&span).collect::<Vec<_>>()
        );
    }

    #[test]
    fn another_rule_format_or_damage_is_not_used() {
        let mut index = sample_index();
        let stamp = [7u8; 32];
        let mut bytes = Vec::new();
        index.write_to(&mut bytes, &stamp, |_| 1).unwrap();
        let len = bytes.len() as u64;
        let read = |bytes: &[u8], rule: PairingRule| {
            InvertedIndex::read_from(&mut &bytes[..], rule, 0.032, len)
        };
        assert!(read(&bytes, rule()).unwrap().is_some());
        let other_rule = PairingRule {
            fan_value: 4,
            ..rule()
        };
        assert!(read(&bytes, other_rule).unwrap().is_none());
        // The previous format is not read.
        let mut old = bytes.clone();
        old[..8].copy_from_slice(b"AFPOSTv2");
        assert!(read(&old, rule()).unwrap().is_none());
        // A truncated file is an error, not an index.
        assert!(read(&bytes[..bytes.len() / 2], rule()).is_err());
        // Offsets that no longer add up are caught before any lookup could go out of bounds.
        let mut damaged = bytes.clone();
        let offsets_start = 8 + 32 + 16 + 8 + 4 + 8;
        damaged[offsets_start + 4 * 1000..offsets_start + 4 * 1000 + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&damaged, rule()).unwrap().is_none());
    }
}
