#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (csrc/fuzz/corpus/<target>/).

Each seed is a meaningful program in the input format the target decodes
(fuzz_input.h and the op switch of each target), so the fuzzer starts from
valid rings, wraps, SKIPs and a valid handshake instead of discovering the
layout byte by byte. Run it again after changing an input format.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC, VERSION, SKIP = 0x54414348, 4, 0xFFFFFFFF


def cap_index(cap):
    return (cap // 64).bit_length() - 1


def prologue(cap, tail, used_slots, state_byte=0, owners=b'\x00'):
    """capacity, an intact header (ready; owner words as `owners` encodes
    them, by default both 0 with our end the listener), honest indices."""
    out = bytes([cap_index(cap), 0, state_byte, 0, 0]) + owners
    return out + bytes([0]) + struct.pack('<QH', tail, used_slots)


def slot(size, type_id, rs, fill):
    return struct.pack('<III', size, type_id, rs) + bytes(52) + bytes([fill]) * (rs - 64)


def skip_hdr():
    return struct.pack('<I', SKIP) + bytes(60)


# consumer ops (op % 13)
PEEK, BATCH, RELEASE, RELEASE_RAW, PUBLISH, PRODUCE_PUB, PRODUCE, LONE_SKIP, FLUSH, HOSTILE, \
    STAMPS = 0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12


def c_produce(n, publish=True):
    return bytes([PRODUCE_PUB if publish else PRODUCE]) + struct.pack('<H', n)


def consumer_seeds():
    seeds = {}
    cap = 1024
    # 1. empty ring, an honest producer: messages of several sizes, wraps,
    #    peeks, batches, pinned and late releases, then a close.
    ops = b''
    for n in (0, 10, 200, 448, 100, 300, 1, 448, 64, 0):
        ops += c_produce(n) + bytes([PEEK])
        ops += bytes([RELEASE, 0])
    ops += c_produce(30, False) + c_produce(40) + bytes([BATCH, 7, RELEASE, 1, PUBLISH])
    ops += bytes([LONE_SKIP, PEEK]) + c_produce(5) + bytes([PEEK, RELEASE, 0])
    ops += bytes([FLUSH, 0x43, PEEK, PEEK])
    seeds['honest_stream'] = prologue(cap, 0, 0) + bytes(cap) + ops

    # 2. a ring holding three messages, counters near 2^64.
    tail = 2**64 - 512
    ring = bytearray(cap)
    off = tail % cap
    msgs = [(5, 7, 128), (100, 8, 192), (0, 9, 64)]
    for size, tid, rs in msgs:
        ring[off:off + rs] = slot(size, tid, rs, 0x11 * tid)
        off += rs
    used = sum(m[2] for m in msgs) // 64
    seeds['three_messages'] = prologue(cap, tail, used) + bytes(ring) + \
        bytes([PEEK, BATCH, 3, RELEASE, 1, PEEK, RELEASE, 0, PUBLISH])

    # 3. a wrapped ring: a slot at the end, a SKIP, a slot at offset 0.
    ring = bytearray(cap)
    tail = 3 * cap + 768
    ring[768:768 + 128] = slot(20, 1, 128, 0x21)
    ring[896:896 + 64] = skip_hdr()
    ring[0:256] = slot(150, 2, 256, 0x22)
    used = (128 + 128 + 256) // 64
    seeds['wrapped_skip'] = prologue(cap, tail, used) + bytes(ring) + \
        bytes([PEEK, PEEK, RELEASE, 1, PEEK])

    # 4. a lone SKIP at the end of the published data (0.5.1 may do it):
    #    empty, nothing read at offset 0 (which holds a stale header).
    ring = bytearray(cap)
    ring[896:960] = skip_hdr()
    ring[0:128] = slot(9999, 3, 128, 0x33)
    seeds['lone_skip'] = prologue(cap, cap + 896, 2) + bytes(ring) + \
        bytes([PEEK, PEEK]) + c_produce(40) + bytes([PEEK])

    # 5. hostile: a reserved_size past the end, then head jumps back.
    ring = bytearray(cap)
    ring[0:128] = slot(10, 1, 128, 0x44)
    seeds['hostile'] = prologue(cap, 0, 2) + bytes(ring) + \
        bytes([HOSTILE, 2, 2]) + struct.pack('<I', 2048) + bytes([PEEK]) + \
        bytes([HOSTILE, 1]) + struct.pack('<h', -1) + bytes([PEEK, PEEK])

    # 6. position stamps: the producer announces them, then commits slots it
    #    does not publish (taken by their stamps), wraps behind a stamped
    #    SKIP; then a stamp that names the read position over a stale header.
    ops = bytes([STAMPS])
    for n in (0, 31, 32, 33, 200, 448, 7, 448, 100):
        ops += c_produce(n, False) + bytes([PEEK, RELEASE, 0])
    ops += c_produce(20, False) + c_produce(300, False) + bytes([BATCH, 4, RELEASE, 1, PUBLISH])
    ops += bytes([FLUSH, 0, PEEK, HOSTILE, 8, 0, PEEK, PEEK])
    seeds['stamped_stream'] = prologue(cap, 0, 0) + bytes(cap) + ops
    return seeds


# producer ops (op % 10)
RESERVE, COMMIT, ROLLBACK, PFLUSH, CONSUME, PHOSTILE = 0, 3, 5, 6, 7, 9


def p_reserve(n):
    return bytes([RESERVE, 4]) + struct.pack('<H', n)


def producer_seeds():
    seeds = {}
    cap = 1024
    ops = b''
    for n in (0, 10, 200, 448, 100, 300, 1, 448, 64):
        ops += p_reserve(n) + bytes([COMMIT]) + struct.pack('<H', n)
        ops += bytes([PFLUSH, CONSUME, 0])
    ops += p_reserve(50) + bytes([ROLLBACK]) + p_reserve(448) + bytes([COMMIT, 3, 0])
    ops += bytes([CONSUME, 9])
    seeds['honest_stream'] = prologue(cap, 0, 0) + ops
    # the owner words: the connector holds the producer role (refused), a
    # hostile value (refused), our own value as the connector (claimed)
    seeds['owner_taken'] = prologue(cap, 0, 0, owners=bytes([2])) + ops
    seeds['owner_hostile'] = prologue(cap, 0, 0, owners=bytes([16]) + struct.pack('<I', 0xDEADBEEF)) + ops
    seeds['owner_ours'] = prologue(cap, 0, 0, owners=bytes([64 | 2 | (1 << 2)])) + ops
    # counters near 2^64 with wraps
    seeds['near_wrap'] = prologue(cap, 2**64 - 640, 0) + ops
    # a hostile tail: ahead of head, then unaligned
    seeds['hostile_tail'] = prologue(cap, 0, 0) + p_reserve(100) + \
        bytes([COMMIT, 100, 0, PHOSTILE, 1]) + struct.pack('<h', 40) + p_reserve(900) + \
        bytes([PHOSTILE, 2, 5]) + p_reserve(600) + bytes([PFLUSH])
    return seeds


def handshake(cap, flags=0, shm=None):
    return struct.pack('<8I', MAGIC, VERSION, cap, 768 + cap if shm is None else shm, 0, 0, 64, flags)


def handshake_seeds():
    return {
        'valid_4096': handshake(4096),
        'valid_max': handshake(2**31),
        'rpc_flags': handshake(4096, flags=1),
        'bad_shm_size': handshake(4096, shm=4096),
        'short': handshake(4096)[:31],
    }


FRAME_MAGIC = 0x4D524654


def frame(code, bits, shape, strides=None, offset=192, data_size=None, pad=0):
    """A tensor frame payload: the 192-byte header, zeros up to offset, the data."""
    n = 1
    for d in shape:
        n *= d
    size = n * bits // 8 if data_size is None else data_size
    dims = list(shape) + [0] * (8 - len(shape))
    st = (list(strides) if strides else []) + [0] * (8 - len(strides or []))
    hdr = struct.pack('<IHHBBHIQQ8q8q32x', FRAME_MAGIC, 1, 1 if strides else 0, code, bits, 1,
                      len(shape), offset, size, *dims, *st)
    return hdr + bytes(offset - 192) + bytes(range(256)) * (size // 256) + bytes(size % 256 + pad)


def frame_seeds():
    return {
        'u8_image': frame(1, 8, [4, 6, 3]),
        'f32_0d': frame(2, 32, []),
        'c128_6d': frame(5, 128, [1, 2, 1, 2, 1, 1]),
        'strided_rows': frame(1, 8, [3, 5], strides=[8, 1], data_size=21),
        'empty': frame(6, 8, [0, 9]),
        'offset_256': frame(0, 16, [7], offset=256),
        'short_data': frame(2, 64, [4])[:-1],
    }


def main():
    for target, seeds in (('consumer', consumer_seeds()), ('producer', producer_seeds()),
                          ('handshake', handshake_seeds()), ('frame', frame_seeds())):
        d = os.path.join(HERE, 'corpus', target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)


if __name__ == '__main__':
    main()
