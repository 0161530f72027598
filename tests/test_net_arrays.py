"""Tensor frames over a tcp:// bus: send_array builds the frame (ABI.md,
"Tensor frames") and the receiver gets the array back by recv_array or a
view's array(), dtype and shape included, from numpy C-order, Fortran-order
and sliced input and from torch CPU tensors; send_array_zero_copy fills the
same frame in place, from another process."""
import numpy as np
import pytest

zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")

import tachyon  # noqa: E402
from conftest import popen_isolated, torch  # noqa: E402
from tachyon._core import _frame_bytes  # noqa: E402
from test_net import free_url, local_pair  # noqa: E402  (puts tests/isolated on sys.path)
from net_array_peer import CASES, MARKER, fill  # noqa: E402


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


def test_send_array_zero_copy_across_processes():
    """A peer process fills arrays in place with send_array_zero_copy (float64,
    int8, 0-d, zero-size, float32); each arrives as the very frame send_array
    writes, read by array(), recv_array() and torch.from_dlpack. A block that
    raises sends nothing, and the next message arrives."""
    url = free_url()
    peer = popen_isolated("net_array_peer.py", url)
    try:
        with tachyon.Bus.listen(url, 1 << 16, timeout=20, role="consumer") as bus:
            for k, (tid, shape, dtype) in enumerate(CASES + [MARKER]):
                want = fill(shape, dtype)
                if k == 1:
                    got = bus.recv_array(timeout=20)
                    assert got.flags.writeable
                    assert same(got, want), (tid, got)
                    continue
                with bus.recv_zero_copy(timeout=20) as rx:
                    # (the rolled-back block's type_id 6 never shows up: the marker follows 5)
                    assert rx.type_id == 0xFFFF0000 | tid, hex(rx.type_id)
                    assert bytes(rx) == _frame_bytes(want), tid
                    if dtype == "float32" and shape == (3, 4) and torch is not None:
                        t = torch.from_dlpack(rx)
                        assert torch.equal(t, torch.from_numpy(want))
                        del t
                    else:
                        a = rx.array()
                        assert same(a, want) and not a.flags.writeable, tid
                        del a
            with pytest.raises(tachyon.PeerClosedError):
                bus.recv(timeout=20)
        out, err = peer.communicate(timeout=30)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.communicate()
    assert peer.returncode == 0, err
    # every block's array read-only after it, the rolled-back one's too
    assert out.split() == ["readonly"] + ["True"] * (len(CASES) + 1), out
