"""One end of a bus for the observer tests (tests/test_observe.py).

usage: observed_end.py MODE PATH [COUNT]
MODE: listen-consumer   listen at PATH, read every message; after the peer
                        dies or closes, print it and stay (holding the ring)
      connect-producer  connect, send 100-byte messages until killed
                        (10 at a time, 1 ms apart: steady traffic, no spinning)
      listen-idle       listen, read exactly COUNT messages, print "idle", then
                        make no call on the bus until killed
      connect-idle      connect, send exactly COUNT messages, print "idle", then
                        make no call until killed
      listen-pin        listen, read exactly COUNT messages and keep the second
                        as a memoryview (its slot and every later one stay
                        pinned), print "pinned"; on SIGUSR1 drop it, look once
                        more, print "released"
Prints "ready" once the bus is up. With TACHYON_TEST_UID set (as root) it
first becomes that uid, after the interpreter has started (its files may
not be readable by that uid).
"""
import os
import sys
import time

import tachyon

if os.environ.get("TACHYON_TEST_UID"):
    uid = int(os.environ["TACHYON_TEST_UID"])
    os.setgid(uid)
    os.setuid(uid)

mode, path = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 0
if mode.startswith("listen"):
    bus = tachyon.Bus.listen(path, 1 << 16, timeout=30)
else:
    bus = tachyon.Bus.connect(path, timeout=30)
print("ready", flush=True)

if mode == "listen-consumer":
    try:
        for _ in bus:
            pass
        print("closed", flush=True)
    except tachyon.PeerDeadError:
        print("dead", flush=True)
elif mode == "connect-producer":
    while True:
        for _ in range(10):
            bus.send(b"m" * 100, timeout=None)
        time.sleep(0.001)
elif mode == "listen-idle":
    for _ in range(count):
        bus.recv(timeout=30)
    # one empty look, so the consumer publishes its tail and counters
    assert bus.try_recv() is None
    print("idle", flush=True)
elif mode == "listen-pin":
    import signal
    import threading
    dropped = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: dropped.set())
    held = []
    for i in range(count):
        with bus.recv_zero_copy(timeout=30) as guard:
            if i == 1:
                held.append(memoryview(guard))  # outlives the block: the slot stays pinned
    assert bus.try_recv() is None  # an empty look publishes tail, counters and read cursor
    print("pinned", flush=True)
    dropped.wait()
    for view in held:
        view.release()
    held.clear()
    assert bus.try_recv() is None
    print("released", flush=True)
elif mode == "connect-idle":
    for i in range(count):
        bus.send(i.to_bytes(4, "little") * 8, type_id=i, timeout=None)
    print("idle", flush=True)
while True:
    time.sleep(10)
