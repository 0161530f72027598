"""The producing end of tests/test_net_resume.py, in its own process.

    net_resume_peer.py URL N SEED LIVENESS [hold] [listen] [many]

Connects to URL with LIVENESS, sends N messages of the checked stream
(tests/isolated/streamcheck.py, seeded by SEED), then closes. N 0: sends
until a line arrives on stdin (or 1 GB went), a message a millisecond
at most so that a test's stream lasts. With "hold" it prints "last-sent"
after the last send and closes only once a line arrives on stdin. With
"listen" it listens on URL (capacity 256 KiB) instead of connecting. With
"many" it sends with send_many, eight messages a call, all with the
type_id of the call's first (group_type_id), so that the small ones travel
in batches. Prints
"sent N BYTES CLOSE_SECONDS" at the end, or "dead MONOTONIC LAST_ACKED_SEQ
SENT" and exits 3 on PeerDeadError.
"""
import sys
import threading
import time

import tachyon
from streamcheck import group_type_id, payload_of, sizes, type_id_of

url, n, seed, live = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
hold, listen, many = ("hold" in sys.argv[5:], "listen" in sys.argv[5:],
                      "many" in sys.argv[5:])
sent = total = 0
stop = threading.Event()
if not n:
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
if listen:
    bus = tachyon.Bus.listen(url, 256 << 10, timeout=30, liveness=live)
else:
    bus = tachyon.Bus.connect(url, timeout=30, liveness=live)
try:
    if many:
        group = []
        for seq, size in enumerate(sizes(seed, bus.max_payload, n or 1 << 40)):
            group.append(payload_of(seq, size))
            total += size
            if len(group) == 8 or seq == n - 1:
                first = seq + 1 - len(group)
                sent += bus.send_many(group, group_type_id(first), timeout=60)
                group = []
                if stop.is_set() or total > 1 << 30:
                    break
                if not n:
                    time.sleep(0.002)
    for seq, size in enumerate(sizes(seed, bus.max_payload, 0 if many else n or 1 << 40)):
        if stop.is_set() or total + size > 1 << 30:
            break
        bus.send(payload_of(seq, size), type_id_of(seq), timeout=60)
        sent += 1
        total += size
        if not n:
            time.sleep(0.001)
    if hold:
        print("last-sent", flush=True)
        sys.stdin.readline()
    t0 = time.monotonic()
    bus.close()
    print("sent", sent, total, f"{time.monotonic() - t0:.3f}", flush=True)
except tachyon.PeerDeadError as e:
    print("dead", time.monotonic(), e.last_acked_seq, sent, flush=True)
    print(e, file=sys.stderr)
    sys.exit(3)
