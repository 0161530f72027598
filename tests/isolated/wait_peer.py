"""The producer process of tests/test_wait.py and tests/test_asyncio.py.

usage:
  wait_peer.py send K DELAY PATH...   connect to every PATH as producer, print
                                      "connected", sleep DELAY s, send b"hello"
                                      on bus K, print "sent <CLOCK_MONOTONIC s>",
                                      then hold the buses until stdin closes
  wait_peer.py hold PATH...           connect, print "connected", hold the buses
                                      until stdin closes (or the process is killed)
  wait_peer.py stream PATH COUNT SEED send COUNT messages (8-byte little-endian
                                      sequence number + 0..200 random bytes) in
                                      bursts with random pauses, then one message
                                      of type_id 1: the crc32 of every payload
                                      in order; then close
"""
import random
import struct
import sys
import time
import zlib

import tachyon


def connect_all(paths):
    return [tachyon.Bus.connect(p, timeout=20, role="producer") for p in paths]


mode = sys.argv[1]
if mode in ("send", "hold"):
    k, delay = (int(sys.argv[2]), float(sys.argv[3])) if mode == "send" else (None, 0.0)
    buses = connect_all(sys.argv[4:] if mode == "send" else sys.argv[2:])
    print("connected", flush=True)
    if mode == "send":
        time.sleep(delay)
        t = time.monotonic()
        buses[k].send(b"hello", type_id=7)
        print("sent", t, flush=True)
    sys.stdin.read()
    for b in buses:
        b.close()
elif mode == "stream":
    path, count, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    crc = 0
    with tachyon.Bus.connect(path, timeout=20, role="producer") as bus:
        for seq in range(count):
            data = struct.pack("<Q", seq) + rng.randbytes(rng.randint(0, 200))
            crc = zlib.crc32(data, crc)
            bus.send(data, type_id=0, timeout=None)
            r = rng.random()
            if r < 0.002:
                time.sleep(rng.random() * 0.02)  # a long pause: the receiver sleeps
            elif r < 0.05:
                time.sleep(rng.random() * 0.0005)
        bus.send(struct.pack("<I", crc), type_id=1, timeout=None)
    print("sent", count, flush=True)
else:
    raise SystemExit(f"unknown mode {mode}")
