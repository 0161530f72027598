"""SIGINT during a blocking recv in the main thread (R12).

usage: sigint_recv.py [direct|masked]. masked: the main thread blocks SIGINT,
so the kernel delivers it to the producer thread and no EINTR wakes the main
thread's futex wait: only the periodic interrupted() check can notice it.

Prints "blocking" just before the main thread blocks in recv; after the
KeyboardInterrupt it prints "interrupted <CLOCK_MONOTONIC seconds>", lets a
producer thread send 10 more messages and checks that all 20 arrive in order."""
import signal
import sys
import threading
import time

from pairlib import in_process_pair

cons, prod = in_process_pair("sigint")
go = threading.Event()


def producer():
    for i in range(10):
        prod.send(bytes([i]), timeout=None)
    go.wait()
    for i in range(10, 20):
        prod.send(bytes([i]), timeout=None)


pt = threading.Thread(target=producer)
pt.start()
if sys.argv[1:] == ["masked"]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # pt was started before: it takes it
got = [cons.recv(timeout=5).data[0] for _ in range(10)]
try:
    print("blocking", flush=True)
    cons.recv()  # nothing more comes until go is set: blocks until SIGINT
    print("recv returned without a signal", flush=True)
    raise SystemExit(1)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
go.set()
got += [cons.recv(timeout=5).data[0] for _ in range(10)]
pt.join()
assert got == list(range(20)), got
assert cons.try_recv() is None
print("after ok", len(got), flush=True)
prod.close()
cons.close()
