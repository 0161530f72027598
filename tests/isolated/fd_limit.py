"""Open one end of a bus with only K more file descriptors allowed.

    fd_limit.py ROLE PATH K

ROLE listen or connect. Prints "ok", or the exception's class name, its
errno, the seconds the call took, and its message, tab-separated."""
import os
import resource
import sys
import time

import tachyon

role, path, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
lowest = os.dup(0)  # the lowest free descriptor: K more fit from here
os.close(lowest)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (lowest + k, hard))
t0 = time.monotonic()
try:
    if role == "listen":
        bus = tachyon.Bus.listen(path, 4096, timeout=5)
    else:
        bus = tachyon.Bus.connect(path, timeout=5)
except tachyon.TachyonError as exc:
    print(type(exc).__name__, exc.errno if isinstance(exc, OSError) else None,
          f"{time.monotonic() - t0:.3f}", exc, sep="\t", flush=True)
else:
    print("ok", flush=True)
    bus.close()
