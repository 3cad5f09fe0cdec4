//! Compact binary encoding of a song's peaks: the store's fingerprint blob.
//!
//! Layout: a version byte ([`CODEC_VERSION`]), the peak count as a LEB128 varint, then per peak
//! one varint of `(frame - previous_frame) << 9 | bin`. Peaks are sorted by frame, so the frame
//! delta is small and most peaks take two bytes.

use crate::engine::Peak;
use crate::engine::landmarks::BIN_BITS;

/// Version byte at the start of every blob.
pub const CODEC_VERSION: u8 = 1;

/// Encodes peaks sorted by (frame, bin).
pub fn encode_peaks(peaks: &[Peak]) -> Vec<u8> {
    let mut out = Vec::with_capacity(peaks.len() * 2 + 8);
    out.push(CODEC_VERSION);
    write_varint(&mut out, peaks.len() as u64);
    let mut previous = 0u32;
    for peak in peaks {
        let delta = peak.frame.saturating_sub(previous);
        previous = peak.frame;
        write_varint(
            &mut out,
            (u64::from(delta) << BIN_BITS) | u64::from(peak.bin),
        );
    }
    out
}

/// Decodes a blob made by [`encode_peaks`].
pub fn decode_peaks(blob: &[u8]) -> Result<Vec<Peak>, String> {
    let (&version, mut rest) = blob.split_first().ok_or("empty fingerprint blob")?;
    if version != CODEC_VERSION {
        return Err(format!(
            "fingerprint blob version {version} is not supported"
        ));
    }
    let count = read_varint(&mut rest)? as usize;
    if count > blob.len() {
        return Err("fingerprint blob is shorter than its peak count".to_string());
    }
    let mut peaks = Vec::with_capacity(count);
    let mut frame = 0u32;
    for _ in 0..count {
        let value = read_varint(&mut rest)?;
        let delta = u32::try_from(value >> BIN_BITS).map_err(|_| "peak frame out of range")?;
        frame = frame.checked_add(delta).ok_or("peak frame out of range")?;
        let bin = (value & ((1 << BIN_BITS) - 1)) as u16;
        peaks.push(Peak { frame, bin });
    }
    if !rest.is_empty() {
        return Err("trailing bytes after the peaks".to_string());
    }
    Ok(peaks)
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or("truncated fingerprint blob")?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("malformed varint in fingerprint blob".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let peaks: Vec<Peak> = (0..1000u32)
            .map(|i| Peak {
                frame: i / 2 + i % 7,
                bin: (i * 37 % 435) as u16,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let blob = encode_peaks(&peaks);
        assert_eq!(decode_peaks(&blob).unwrap(), peaks);
        assert!(
            blob.len() <= peaks.len() * 2 + 4,
            "{} bytes for {} peaks",
            blob.len(),
            peaks.len()
        );
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let blob = encode_peaks(&[Peak { frame: 3, bin: 4 }, Peak { frame: 9, bin: 400 }]);
        for cut in 0..blob.len() {
            assert!(decode_peaks(&blob[..cut]).is_err());
        }
        assert!(decode_peaks(&[9, 0]).is_err());
    }
}
