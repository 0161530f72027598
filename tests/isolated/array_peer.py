"""The other end of tests/test_arrays.py's two-process round trips.

    array_peer.py produce PATH   connect, send every case of array_cases
                                 (numpy with send_array, the same with
                                 send_array_zero_copy, torch tensors), close
    array_peer.py consume PATH   connect, receive every case the test sends,
                                 print one line per case: name, then "ok" or
                                 what differed
"""
import sys

import numpy as np
import torch

import array_cases
import tachyon

mode, path = sys.argv[1], sys.argv[2]
bus = tachyon.Bus.connect(path, timeout=20)
if mode == "produce":
    for i, (name, sent, _) in enumerate(array_cases.numpy_cases()):
        bus.send_array(sent, i, timeout=None)
    for i, (name, _, want) in enumerate(array_cases.numpy_cases()):
        with bus.send_array_zero_copy(want.shape, want.dtype, i, timeout=None) as a:
            a[...] = want
    for i, (name, t) in enumerate(array_cases.torch_cases()):
        bus.send_array(t, i, timeout=None)
    bus.close()
else:
    for i, (name, _, want) in enumerate(array_cases.numpy_cases()):
        got = bus.recv_array(timeout=20)
        same = got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
        print(name, "ok" if same else f"differs: {got.dtype} {got.shape}", flush=True)
    for i, (name, t) in enumerate(array_cases.torch_cases()):
        with bus.recv_zero_copy(timeout=20) as rx:
            got = torch.from_dlpack(rx).clone()
        same = got.dtype == t.dtype and got.shape == t.shape and torch.equal(got, t.contiguous())
        print("torch", name, "ok" if same else f"differs: {got.dtype} {tuple(got.shape)}", flush=True)
    bus.close()
