"""Exports alive at interpreter exit: their deleters run during finalization
(or never) and must not crash. usage: dlpack_at_exit.py numpy|torch"""
import os
import sys
import threading

import numpy as np

import tachyon

path = f"/tmp/tachyon-atexit-{os.getpid()}.sock"
box = {}
t = threading.Thread(target=lambda: box.setdefault("prod", tachyon.Bus.connect(path, timeout=10)))
t.start()
cons = tachyon.Bus.listen(path, 1 << 12, timeout=10)
t.join()
prod = box["prod"]
prod.send(b"held at exit" * 4)
with cons.recv_zero_copy(timeout=5) as rx:
    if sys.argv[1] == "torch":
        import torch

        KEPT = [torch.from_dlpack(rx), torch.from_dlpack(rx)]
    else:
        KEPT = [np.from_dlpack(rx)]
    UNCONSUMED = rx.__dlpack__(max_version=(1, 0))  # a capsule nobody consumed
# a daemon thread still holds a tensor when the interpreter shuts down
threading.Thread(target=lambda kept=list(KEPT): __import__("time").sleep(60), daemon=True).start()
print("exiting with live exports", flush=True)
