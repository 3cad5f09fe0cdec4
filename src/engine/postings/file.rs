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
//! Layout (little-endian): magic `AFPOSTv4`, stamp (32 bytes), rule (4 x u32), frame
//! duration (f64), next base (u32), then the key offsets, and length-prefixed arrays: postings
//! (u32), packed peaks (u32), spans (song id i64, base u32, frames u32, peaks start u64, peak
//! count u32, identity u64), the side list of songs added since the last merge (key u32, frame
//! u32; sorted) and the ids of removed songs (i64). Writing never merges: that would briefly
//! need a second copy of the key offsets and postings.
//!
//! The key offsets span the whole key space (32 MB) however small the library, so they are
//! stored in whichever form is smaller: dense (a `u32` array, as in memory) or sparse (the keys
//! that have postings, and their posting counts), after a `u32` naming the form.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use super::{InvertedIndex, KEY_SPACE, PairingRule, SideList, SongSpan};

const MAGIC: &[u8; 8] = b"AFPOSTv4";

/// How the key offsets are stored: as in memory.
const OFFSETS_DENSE: u32 = 0;
/// How the key offsets are stored: the keys with postings, then their posting counts.
const OFFSETS_SPARSE: u32 = 1;

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
    write_u32s_unprefixed(out, values)
}

/// Writes `pairs` as a length-prefixed `u32` array of their halves, without a flat copy.
fn write_pairs(out: &mut impl Write, pairs: &[(u32, u32)]) -> io::Result<()> {
    out.write_all(&(2 * pairs.len() as u64).to_le_bytes())?;
    let mut buffer = Vec::with_capacity(2 * 4096);
    for chunk in pairs.chunks(4096) {
        buffer.clear();
        buffer.extend(chunk.iter().flat_map(|&(a, b)| [a, b]));
        write_u32s_unprefixed(out, &buffer)?;
    }
    Ok(())
}

fn write_u32s_unprefixed(out: &mut impl Write, values: &[u32]) -> io::Result<()> {
    if cfg!(target_endian = "little") {
        out.write_all(bytemuck::cast_slice(values))
    } else {
        values
            .iter()
            .try_for_each(|v| out.write_all(&v.to_le_bytes()))
    }
}

/// Writes the key offsets, sparse when fewer than half the keys have postings.
fn write_offsets(out: &mut impl Write, offsets: &[u32]) -> io::Result<()> {
    let used_keys = offsets.windows(2).filter(|w| w[1] > w[0]).count();
    if 2 * used_keys >= offsets.len() {
        out.write_all(&OFFSETS_DENSE.to_le_bytes())?;
        return write_u32s(out, offsets);
    }
    let mut keys = Vec::with_capacity(used_keys);
    let mut counts = Vec::with_capacity(used_keys);
    for (key, w) in offsets.windows(2).enumerate() {
        if w[1] > w[0] {
            keys.push(key as u32);
            counts.push(w[1] - w[0]);
        }
    }
    out.write_all(&OFFSETS_SPARSE.to_le_bytes())?;
    write_u32s(out, &keys)?;
    write_u32s(out, &counts)
}

/// Reads the key offsets ([`write_offsets`]); `None` if they do not hold together.
fn read_offsets(input: &mut impl Read, max_len: u64) -> io::Result<Option<Vec<u32>>> {
    match read_u32(input)? {
        OFFSETS_DENSE => read_u32s(input, max_len),
        OFFSETS_SPARSE => {
            let Some(keys) = read_u32s(input, max_len)? else {
                return Ok(None);
            };
            let Some(counts) = read_u32s(input, max_len)? else {
                return Ok(None);
            };
            let ascending = keys.windows(2).all(|w| w[0] < w[1]);
            if keys.len() != counts.len()
                || !ascending
                || keys.last().is_some_and(|&k| k as usize >= KEY_SPACE)
            {
                return Ok(None);
            }
            let mut offsets = vec![0u32; KEY_SPACE + 1];
            for (&key, &count) in keys.iter().zip(&counts) {
                offsets[key as usize + 1] = count;
            }
            let mut total = 0u32;
            for offset in &mut offsets {
                let Some(sum) = total.checked_add(*offset) else {
                    return Ok(None);
                };
                total = sum;
                *offset = total;
            }
            Ok(Some(offsets))
        }
        _ => Ok(None),
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
        write_offsets(out, &self.offsets)?;
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
        write_pairs(out, self.pending.sorted_pairs())?;
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
        let Some(offsets) = read_offsets(input, max_len)? else {
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
            pending: SideList::from_sorted(pending),
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
        let pending_ok = self.pending.is_consistent();
        // The song count is the spans less the removed songs: each removed id must be a
        // span's, once.
        let span_ids: HashSet<i64> = self.spans.iter().map(|span| span.song_id).collect();
        let removed_ok = span_ids.len() == self.spans.len()
            && self.removed.iter().all(|id| span_ids.contains(id));
        offsets_ok && spans_ok && pending_ok && removed_ok
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
        old[..8].copy_from_slice(b"AFPOSTv3");
        assert!(read(&old, rule()).unwrap().is_none());
        // A truncated file is an error, not an index.
        assert!(read(&bytes[..bytes.len() / 2], rule()).is_err());
        // Offsets that no longer add up are caught before any lookup could go out of bounds.
        // The sample's offsets are sparse: form, key count, keys, count count, counts.
        let offsets_start = 8 + 32 + 16 + 8 + 4;
        let form = u32::from_le_bytes(bytes[offsets_start..offsets_start + 4].try_into().unwrap());
        assert_eq!(form, OFFSETS_SPARSE);
        let keys_len = u64::from_le_bytes(
            bytes[offsets_start + 4..offsets_start + 12]
                .try_into()
                .unwrap(),
        ) as usize;
        let first_key = offsets_start + 12;
        let first_count = first_key + 4 * keys_len + 8;
        let damage = |at: usize, value: u32| {
            let mut damaged = bytes.clone();
            damaged[at..at + 4].copy_from_slice(&value.to_le_bytes());
            read(&damaged, rule()).unwrap()
        };
        // A count that changes the total, keys out of order, a key out of range, an unknown form.
        assert!(damage(first_count, 1_000).is_none());
        assert!(damage(first_key + 4, 0).is_none());
        assert!(damage(first_key + 4 * (keys_len - 1), KEY_SPACE as u32).is_none());
        assert!(damage(offsets_start, 7).is_none());
        // A removed song that is not one of the spans (the song count would underflow). The
        // file ends with the removed ids, here song 3's.
        let removed_at = bytes.len() - 8;
        assert_eq!(bytes[removed_at..], 3i64.to_le_bytes());
        let mut unknown_removed = bytes.clone();
        unknown_removed[removed_at..].copy_from_slice(&99i64.to_le_bytes());
        assert!(read(&unknown_removed, rule()).unwrap().is_none());
        // The undamaged bytes at those places read back.
        let first_count_value =
            u32::from_le_bytes(bytes[first_count..first_count + 4].try_into().unwrap());
        assert!(damage(first_count, first_count_value).is_some());
    }

    #[test]
    fn key_offsets_are_stored_in_the_smaller_form_and_read_back() {
        let round_trip = |offsets: &[u32]| {
            let mut bytes = Vec::new();
            write_offsets(&mut bytes, offsets).unwrap();
            let form = u32::from_le_bytes(bytes[..4].try_into().unwrap());
            let len = bytes.len();
            let read = read_offsets(&mut bytes.as_slice(), len as u64).unwrap();
            (form, len, read)
        };
        // Three keys with postings: sparse, a few dozen bytes instead of 32 MB.
        let mut offsets = vec![0u32; KEY_SPACE + 1];
        for (key, count) in [(0usize, 2u32), (1_000, 5), (KEY_SPACE - 1, 1)] {
            for offset in &mut offsets[key + 1..] {
                *offset += count;
            }
        }
        let (form, len, read) = round_trip(&offsets);
        assert_eq!(form, OFFSETS_SPARSE);
        assert!(len < 64, "{len} bytes");
        assert_eq!(read.as_deref(), Some(&offsets[..]));
        // Every key with one posting: dense.
        let offsets: Vec<u32> = (0..=KEY_SPACE as u32).collect();
        let (form, len, read) = round_trip(&offsets);
        assert_eq!(form, OFFSETS_DENSE);
        assert_eq!(len, 4 + 8 + 4 * (KEY_SPACE + 1));
        assert_eq!(read.as_deref(), Some(&offsets[..]));
        // An index never merged has no offsets at all.
        assert_eq!(round_trip(&[]).2.as_deref(), Some(&[][..]));
    }
}
