"""A recv blocked on a tcp:// bus, and SIGINT 0.5 s later: prints how long the
KeyboardInterrupt took to arrive."""
import os
import signal
import socket
import threading
import time

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


threading.Thread(target=fire).start()
try:
    lis.recv(timeout=10)
    print("no interrupt")
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - out['t']:.3f} s")
lis.close()
out["c"].close()
