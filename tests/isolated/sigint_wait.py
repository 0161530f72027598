"""SIGINT while the main thread sleeps in tachyon.wait on two buses (R12):
KeyboardInterrupt within the watchdog period (5x margin), then the buses
still work. Prints "KeyboardInterrupt <ms> ms after SIGINT"."""
import os
import signal
import threading
import time

import tachyon
from pairlib import in_process_pair

a_cons, a_prod = in_process_pair("sigwait-a")
b_cons, b_prod = in_process_pair("sigwait-b")
sent = []


def kick():
    time.sleep(0.5)  # well inside the wait: spin done, asleep on the futexes
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)


t = threading.Thread(target=kick)
t.start()
try:
    tachyon.wait([a_cons, b_cons], timeout=30)
    raise SystemExit("wait returned without a message or a signal")
except KeyboardInterrupt:
    late = time.monotonic() - sent[0]
t.join()
print(f"KeyboardInterrupt {late * 1e3:.1f} ms after SIGINT", flush=True)
assert late < 0.2 * 5, late
b_prod.send(b"after")
assert tachyon.wait([a_cons, b_cons], timeout=5) == [b_cons]
assert b_cons.recv(timeout=0).data == b"after"
for bus in (a_cons, a_prod, b_cons, b_prod):
    bus.close()
