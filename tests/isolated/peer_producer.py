"""A producer peer: connect, send COUNT numbered messages, then THEN:
close (close and exit), exit (exit without closing: a dead peer), hang (print
"sent" and wait to be killed)."""
import os
import sys
import time

import tachyon

path, count, then = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bus = tachyon.Bus.connect(path, timeout=20)
for i in range(count):
    bus.send(i.to_bytes(4, "little") * 8, type_id=i, timeout=None)
if then == "close":
    bus.close()
    print("sent", count, flush=True)
elif then == "exit":
    print("sent", count, flush=True)
    os._exit(0)  # no close, no dealloc: the peer is dead, not closed
elif then == "hang":
    print("sent", count, flush=True)
    while True:
        time.sleep(10)
