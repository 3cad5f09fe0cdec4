"""Reading the peaks an audiofp index stores (src/index/codec.rs), for the scripts here.

A blob is a version byte (1), a varint count, then one varint per peak: the frame's distance
from the previous peak's, shifted left by the bin's 9 bits, or'ed with the bin.
"""

BIN_BITS = 9


def read_varint(blob, position):
    value = shift = 0
    while True:
        byte = blob[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def decode_peaks(blob):
    """The (frame, bin) peaks of a blob, in time order."""
    if blob[0] != 1:
        raise ValueError("fingerprint blob version %d is not supported" % blob[0])
    count, position = read_varint(blob, 1)
    frame = 0
    peaks = []
    for _ in range(count):
        value, position = read_varint(blob, position)
        frame += value >> BIN_BITS
        peaks.append((frame, value & ((1 << BIN_BITS) - 1)))
    return peaks
