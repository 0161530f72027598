"""The message stream of the cross-process tests: sizes from a seeded RNG
shared by both ends, payloads that carry their sequence number and a CRC."""
import random
import struct
import zlib

HDR = struct.Struct("<II")  # seq, crc32 of the body


def sizes(seed, n, max_size):
    rng = random.Random(seed)
    return [rng.randint(0, max_size) for _ in range(n)]


def payload(seq, size):
    if size < HDR.size:
        return bytes([seq & 0xFF]) * size
    body = random.Random(seq).randbytes(size - HDR.size)
    return HDR.pack(seq, zlib.crc32(body)) + body


def check(seq, size, data):
    """Raise AssertionError if data is not message `seq` of `size` bytes."""
    if len(data) != size:
        raise AssertionError(f"message {seq}: {len(data)} bytes, expected {size}")
    if size < HDR.size:
        if data != bytes([seq & 0xFF]) * size:
            raise AssertionError(f"message {seq}: short payload {data!r} is wrong")
        return
    got_seq, crc = HDR.unpack_from(data)
    if got_seq != seq:
        raise AssertionError(f"message {seq}: carries sequence number {got_seq}")
    if zlib.crc32(data[HDR.size:]) != crc:
        raise AssertionError(f"message {seq}: checksum mismatch (torn or corrupt)")
