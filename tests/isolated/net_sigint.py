"""A call blocked on a tcp:// bus, and SIGINT 0.5 s later: prints how long the
KeyboardInterrupt took to arrive.

    net_sigint.py [recv|wait|wait-mixed]   the call: recv (the default), tachyon.wait
                                           on the bus, or on it and a local bus
"""
import os
import signal
import socket
import sys
import threading
import time

from pairlib import in_process_pair

import tachyon

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    url = f"tcp://127.0.0.1:{s.getsockname()[1]}"
out = {}
t = threading.Thread(target=lambda: out.setdefault(
    "c", tachyon.Bus.connect(url, timeout=10, liveness=1.0)))
t.start()
lis = tachyon.Bus.listen(url, 1 << 16, timeout=10, liveness=1.0)
t.join()


def fire():
    time.sleep(0.5)
    out["t"] = time.monotonic()
    os.kill(os.getpid(), signal.SIGINT)


mode = sys.argv[1] if len(sys.argv) > 1 else "recv"
local = in_process_pair("net-sigint") if mode == "wait-mixed" else ()
threading.Thread(target=fire).start()
try:
    if mode == "recv":
        lis.recv(timeout=10)
    else:
        tachyon.wait([lis, *local[:1]], timeout=10)
    print("no interrupt")
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - out['t']:.3f} s")
lis.close()
out["c"].close()
for b in local:
    b.close()
