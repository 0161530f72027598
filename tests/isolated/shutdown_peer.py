"""One end of a bus for the shutdown matrix (tests/test_shutdown_truth.py).

    shutdown_peer.py PATH ROLE COUNT THEN

consumer: connect, wait for a line on stdin, receive COUNT messages;
producer: connect, send COUNT 8-byte messages. Then THEN: close (close the
bus and exit) or die (exit without closing). Prints "done" just before
exiting, so the test knows the bus is closed (or abandoned) by then."""
import os
import sys

import tachyon

path, role, count, then = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bus = tachyon.Bus.connect(path, timeout=20, role=role)
if role == "consumer":
    sys.stdin.readline()
    for _ in range(count):
        bus.recv(timeout=20)
else:
    for i in range(count):
        bus.send(i.to_bytes(8, "little"), type_id=i, timeout=None)
if then == "close":
    bus.close()
print("done", flush=True)
os._exit(0)  # no dealloc: "die" leaves the bus open, "close" closed it above
