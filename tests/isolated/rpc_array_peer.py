"""The other end of tests/test_rpc_arrays.py's two-process round trips.

    rpc_array_peer.py callee PATH   serve until the caller closes: a request
                                    holding a frame is answered with the same
                                    array by reply_array (numpy for msg_type
                                    below TORCH_BASE, a torch tensor from
                                    TORCH_BASE on); any other request with
                                    b"no frame" by reply
    rpc_array_peer.py caller PATH   every case of array_cases both ways:
                                    numpy by request_array, torch by call_array
                                    then wait; prints one line per case, its
                                    name then "ok" or what differed
"""
import sys

import numpy as np

try:
    import torch
except ImportError:  # imported by tests/test_rpc_arrays.py for its cases; runs only with torch
    torch = None

import array_cases
import tachyon

CAP = 1 << 16
TORCH_BASE = 100


def torch_cases():
    """array_cases' torch tensors numpy can hold (rx.array() has no bfloat16)."""
    return [(n, t) for n, t in array_cases.torch_cases() if t.dtype != torch.bfloat16]


def as_reply(arr, msg_type):
    """What a callee replies with for a request of msg_type holding arr."""
    return torch.from_numpy(arr.copy()) if msg_type >= TORCH_BASE else arr


def same(got, want):
    return got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


def callee(path):
    with tachyon.RpcBus.rpc_listen(path, CAP, CAP, timeout=20) as bus:
        print("listening", flush=True)
        while True:
            try:
                with bus.serve(timeout=30) as rx:
                    cid, mt = rx.correlation_id, rx.type_id
                    try:
                        arr = np.array(rx.array())  # a copy: the slot goes back below
                    except TypeError:
                        arr = None
            except tachyon.PeerClosedError:
                return
            if arr is None:
                bus.reply(cid, b"no frame", mt, timeout=10)
            else:
                bus.reply_array(cid, as_reply(arr, mt), mt, timeout=10)


def caller(path):
    with tachyon.RpcBus.rpc_connect(path, timeout=20) as bus:
        for i, (name, sent, want) in enumerate(array_cases.numpy_cases()):
            got = bus.request_array(sent, i, timeout=20)
            print(name, "ok" if same(got, want) else f"differs: {got.dtype} {got.shape}",
                  flush=True)
        for i, (name, t) in enumerate(torch_cases()):
            cid = bus.call_array(t, TORCH_BASE + i, timeout=20)
            with bus.wait(cid, timeout=20) as rx:
                got = torch.from_dlpack(rx.array()).clone()
            ok = got.dtype == t.dtype and got.shape == t.shape and torch.equal(got, t.contiguous())
            print("torch", name, "ok" if ok else f"differs: {got.dtype} {tuple(got.shape)}",
                  flush=True)


if __name__ == "__main__":
    {"callee": callee, "caller": caller}[sys.argv[1]](sys.argv[2])
