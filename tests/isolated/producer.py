"""Producer side of the cross-process stream tests.

usage: producer.py PATH MODE COUNT SEED MAX_SIZE
MODE: send | many | zc | mixed. Connects, sends COUNT messages, closes.
"""
import random
import sys
import time

import tachyon
from streamlib import payload, sizes

path, mode, count, seed, max_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sz = sizes(seed, count, max_size)
rng = random.Random(seed + 1)

with tachyon.Bus.connect(path, timeout=20) as bus:
    seq = 0
    while seq < count:
        m = mode if mode != "mixed" else rng.choice(("send", "many", "zc"))
        if m == "send":
            bus.send(payload(seq, sz[seq]), type_id=seq & 0xFFFFFFFF, timeout=None)
            seq += 1
        elif m == "many":
            k = min(rng.randint(1, 64), count - seq)
            sent = bus.send_many([payload(s, sz[s]) for s in range(seq, seq + k)], type_id=7, timeout=None)
            assert sent == k
            seq += k
        elif m == "zc":
            data = payload(seq, sz[seq])
            with bus.send_zero_copy(size=len(data), type_id=seq, timeout=None) as tx:
                with memoryview(tx) as mv:
                    mv[:] = data
                tx.actual_size = len(data)
            seq += 1
        if mode == "mixed" and rng.random() < 0.001:
            time.sleep(rng.random() * 0.005)  # random pauses: the consumer sleeps and is woken
print("sent", seq, flush=True)
