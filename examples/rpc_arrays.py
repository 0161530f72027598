"""Arrays over request/reply: a worker process answers matrices with matrices.

    python3 examples/rpc_arrays.py

The client sends NumPy arrays with request_array and call_array; dtype and
shape travel with the data as a tensor frame (a torch CPU tensor or any object
with the buffer protocol goes the same way). The worker reads each request in
place with rx.array() and answers with reply_array. To a tachyon-ipc 0.5.1 peer
a frame is just payload bytes, so the other end may be one, reading or writing
the frame layout itself (ABI.md, "Tensor frames on the request/reply bus").
"""
import sys

import numpy as np

import tachyon
from _launch import two_processes

GRAM, COLUMN_SUMS = 1, 2


def worker(path):
    with tachyon.RpcBus.rpc_listen(path, 1 << 16, 1 << 16, timeout=10) as bus:
        while True:
            try:
                with bus.serve(timeout=10) as rx:
                    cid, kind = rx.correlation_id, rx.type_id
                    m = rx.array()  # read-only, over the request's slot
                    answer = m.T @ m if kind == GRAM else m.sum(axis=0)
                    del m  # the slot goes back when the with block ends
            except tachyon.PeerClosedError:
                return  # the client closed
            bus.reply_array(cid, answer, kind, timeout=5)


def client(path):
    with tachyon.RpcBus.rpc_connect(path) as bus:
        m = np.arange(6, dtype=np.float64).reshape(2, 3)
        gram = bus.request_array(m, GRAM, timeout=5)  # one round trip, a NumPy array back
        print(f"gram: shape={gram.shape} dtype={gram.dtype} trace={np.trace(gram)}")
        cid = bus.call_array(np.ones((4, 5), dtype=np.int32), COLUMN_SUMS)
        with bus.wait(cid, timeout=5) as rx:  # or the reply in place
            sums = rx.array()
            print(f"column sums: {sums.tolist()} dtype={sums.dtype}")
            del sums


if __name__ == "__main__":
    sys.exit(two_processes(__file__, worker, client))
