"""Tensor frames over a tcp:// bus: send_array builds the frame (ABI.md,
"Tensor frames") and the receiver gets the array back by recv_array or a
view's array(), dtype and shape included, from numpy C-order, Fortran-order
and sliced input and from torch CPU tensors."""
import numpy as np
import pytest

zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")

from conftest import torch  # noqa: E402
from test_net import local_pair  # noqa: E402


def same(got, want):
    return got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


def test_send_array_numpy_both_ways_of_receiving():
    cons, prod = local_pair(capacity=1 << 20)
    try:
        cases = [np.arange(24, dtype=np.float64).reshape(2, 3, 4),
                 np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
                 np.arange(100, dtype=np.uint8)[::3],
                 np.array(7, dtype=np.complex64),
                 np.zeros((0, 5), dtype=np.float32),
                 np.array([True, False, True])]
        for i, a in enumerate(cases):
            prod.send_array(a, type_id=i, timeout=5)
        for i, a in enumerate(cases):
            if i % 2:
                got = cons.recv_array(timeout=5)
                assert got.flags.writeable
            else:
                with cons.recv_zero_copy(timeout=5) as rx:
                    assert rx.type_id == 0xFFFF0000 | i
                    got = rx.array().copy()
            assert same(got, a), i
        with pytest.raises(ValueError):
            prod.send_array(cases[0], type_id=1 << 16)
        with pytest.raises(TypeError):
            prod.send_array(object())
    finally:
        prod.close()
        cons.close()


@pytest.mark.torch
@pytest.mark.skipif(torch is None, reason="torch is not installed (the test extra installs it)")
def test_send_array_torch():
    cons, prod = local_pair(capacity=1 << 20)
    try:
        t = torch.arange(12, dtype=torch.float32).reshape(3, 4).T  # not C-contiguous
        prod.send_array(t, type_id=3, timeout=5)
        with cons.recv_zero_copy(timeout=5) as rx:
            back = torch.from_numpy(rx.array().copy())
        assert torch.equal(back, t.contiguous())
    finally:
        prod.close()
        cons.close()
