"""Exports alive at interpreter exit: their deleters run during finalization
(or never) and must not crash. usage: dlpack_at_exit.py numpy|torch"""
import sys
import threading

import numpy as np
from pairlib import in_process_pair

cons, prod = in_process_pair("atexit")
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
