"""Arrays and tensors as messages: tensor frames (ABI.md "Tensor frames").

send_array / send_array_zero_copy write frames; .array(), __dlpack__,
Message.array() and recv_array read them with their dtype and shape; a frame
whose header fails a check exposes nothing; non-frames behave as before.
"""
import struct
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="the array API needs numpy")
torch = pytest.importorskip("torch", reason="torch carries bfloat16 and checks DLPack both ways")

import tachyon  # noqa: E402
from conftest import make_pair, popen_isolated  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "isolated"))
import array_cases  # noqa: E402

FRAME_MAGIC = 0x4D524654
HEADER = struct.Struct("<IHHBBHIQQ8q8q32x")


@pytest.fixture
def big_pair(sock_path):
    prod, cons = make_pair(sock_path, 1 << 20)
    yield prod, cons
    prod.close()
    cons.close()


def header(code=2, bits=32, shape=(2, 3), strides=None, offset=192, data_size=None, magic=FRAME_MAGIC,
           version=1, flags=None, ndim=None, lanes=1):
    n = 1
    for d in shape:
        n *= d
    size = n * bits // 8 if data_size is None else data_size
    dims = list(shape) + [0] * (8 - len(shape))
    st = list(strides or []) + [0] * (8 - len(strides or []))
    fl = (1 if strides else 0) if flags is None else flags
    return HEADER.pack(magic, version, fl, code, bits, lanes, len(shape) if ndim is None else ndim,
                       offset, size, *dims, *st)


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("name,sent,want", array_cases.numpy_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_numpy_round_trip_every_way(big_pair, name, sent, want):
    prod, cons = big_pair
    for _ in range(4):
        prod.send_array(sent, 9)
    with cons.recv_zero_copy() as rx:
        assert rx.type_id == tachyon.make_type_id(0xFFFF, 9)
        a = rx.array()
        assert a.dtype == want.dtype and a.shape == want.shape and np.array_equal(a, want)
        assert not a.flags.writeable
        assert a.ctypes.data % 64 == 0  # the data is cache-line aligned in the slot
        d = np.from_dlpack(rx)
        assert d.dtype == want.dtype and d.shape == want.shape and np.array_equal(d, want)
        del a, d
    m = cons.recv()
    a = m.array()
    assert a.dtype == want.dtype and a.shape == want.shape and np.array_equal(a, want)
    assert not a.flags.writeable
    got = cons.recv_array()
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
    assert got.flags.writeable and got.flags.c_contiguous  # a copy of its own
    with cons.drain_batch() as batch:
        v = batch[0].array()
        assert np.array_equal(v, want) and v.shape == want.shape
        del v


def test_torch_both_ways(big_pair):
    prod, cons = big_pair
    for name, t in array_cases.torch_cases():
        prod.send_array(t, 1)
        with cons.recv_zero_copy() as rx:
            got = torch.from_dlpack(rx)
            assert got.dtype == t.dtype and got.shape == t.shape, name
            assert torch.equal(got, t.contiguous()), name
            del got
    # numpy in, torch out; torch in, numpy out
    a = np.arange(30, dtype=np.float64).reshape(5, 6)
    prod.send_array(a)
    with cons.recv_zero_copy() as rx:
        got = torch.from_dlpack(rx)
        assert got.dtype == torch.float64 and tuple(got.shape) == (5, 6)
        assert torch.equal(got, torch.from_numpy(a))
        del got
    prod.send_array(torch.ones(3, 4, dtype=torch.int16))
    got = cons.recv_array()
    assert got.dtype == np.int16 and got.shape == (3, 4) and (got == 1).all()


def test_bfloat16_is_torch_only(big_pair):
    prod, cons = big_pair
    prod.send_array(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    with cons.recv_zero_copy() as rx:
        with pytest.raises(TypeError, match="bfloat16"):
            rx.array()
        got = torch.from_dlpack(rx)
        assert got.dtype == torch.bfloat16 and got.tolist() == [1.5, -2.0]
        del got


def test_buffer_protocol_sources(big_pair):
    import array

    prod, cons = big_pair
    prod.send_array(array.array("i", [1, -2, 3]))
    got = cons.recv_array()
    assert got.dtype == np.intc and got.tolist() == [1, -2, 3]
    prod.send_array(memoryview(b"abc"))
    got = cons.recv_array()
    assert got.dtype == np.uint8 and got.tolist() == [97, 98, 99]
    prod.send_array(memoryview(np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2]))
    got = cons.recv_array()
    assert got.shape == (2, 2) and got.tolist() == [[0, 2], [3, 5]]


def test_array_pins_its_slot(big_pair):
    prod, cons = big_pair
    prod.send_array(np.zeros((64, 64), dtype=np.uint8))
    with cons.recv_zero_copy() as rx:
        a = rx.array()
    assert cons.stats.pinned_bytes > 0
    assert a.sum() == 0  # still readable after the block
    del a
    assert cons.stats.pinned_bytes == 0


def test_send_array_zero_copy(big_pair):
    prod, cons = big_pair
    with prod.send_array_zero_copy((3, 4), np.float32, 7) as a:
        assert a.flags.writeable and a.shape == (3, 4) and a.dtype == np.float32
        a[...] = np.arange(12).reshape(3, 4)
    assert not a.flags.writeable  # the slot is the consumer's now
    m = cons.recv()
    assert tachyon.msg_type(m.type_id) == 7
    assert np.array_equal(m.array(), np.arange(12, dtype=np.float32).reshape(3, 4))
    # an exception rolls the frame back
    with pytest.raises(KeyError):
        with prod.send_array_zero_copy(5, np.int8) as a:
            a[:] = 1
            raise KeyError("stop")
    assert cons.try_recv() is None
    with pytest.raises(TypeError, match="DLPack"):
        with prod.send_array_zero_copy(2, "U3"):
            pass


def test_send_array_refuses(big_pair):
    prod, cons = big_pair
    with pytest.raises(ValueError, match="16-bit"):
        prod.send_array(np.zeros(2), 0x10000)
    with pytest.raises(TypeError, match="buffer protocol or __dlpack__"):
        prod.send_array(object())
    with pytest.raises(TypeError, match="format"):
        prod.send_array(np.zeros(2, dtype="U2"))
    with pytest.raises(ValueError, match="8 dimensions"):
        prod.send_array(np.zeros((1,) * 9))
    assert cons.try_recv() is None


# ---------------------------------------------------------------- non-frames

def test_non_frames_behave_as_before(big_pair):
    prod, cons = big_pair
    prod.send(b"abcdef", type_id=3)
    with cons.recv_zero_copy() as rx:
        with pytest.raises(TypeError, match="not a tensor frame"):
            rx.array()
        d = np.from_dlpack(rx)  # the payload, 1-D uint8, as before
        assert d.dtype == np.uint8 and d.shape == (6,) and bytes(d) == b"abcdef"
        del d
    prod.send(b"xyz", type_id=4)
    m = cons.recv()
    with pytest.raises(TypeError, match="not a tensor frame"):
        m.array()
    prod.send(b"q", type_id=5)
    with pytest.raises(TypeError, match="not a tensor frame"):
        cons.recv_array()


# ---------------------------------------------------------------- hostile frames

HOSTILE = {
    "short": header()[:100],
    "bad magic": header(magic=0x12345678) + bytes(24),
    "bad version": header(version=9) + bytes(24),
    "unknown flag": header(flags=4) + bytes(24),
    "bad dtype": header(code=3) + bytes(24),
    "lanes": header(lanes=2) + bytes(48),
    "ndim too large": header(ndim=9) + bytes(24),
    "overflowing shape": header(shape=(1 << 40, 1 << 40), data_size=0),
    "negative shape": header(shape=(-1, 3), data_size=0),
    "negative stride": header(strides=(-3, 1)) + bytes(24),
    "overflowing stride": header(strides=((1 << 63) - 1, 1)) + bytes(24),
    "misaligned offset": header(offset=200) + bytes(40),
    "offset inside header": header(offset=128) + bytes(24),
    "data past payload": header() + bytes(23),
    "offset past payload": header(offset=1 << 62) + bytes(24),
    "data size lies": header(data_size=8) + bytes(24),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_frame_exposes_nothing(big_pair, case):
    prod, cons = big_pair
    payload = HOSTILE[case]
    created0, _ = tachyon._core._dlpack_counters()
    for _ in range(3):
        prod.send(payload, type_id=0xFFFF0002)  # a peer writing raw bytes under the frame route
    with cons.recv_zero_copy() as rx:
        with pytest.raises(ValueError, match="corrupt tensor frame"):
            rx.array()
        with pytest.raises(BufferError, match="corrupt tensor frame"):
            rx.__dlpack__()
        with pytest.raises(BufferError, match="corrupt tensor frame"):
            np.from_dlpack(rx)
        assert bytes(rx) == payload  # the bytes themselves stay readable
    assert tachyon._core._dlpack_counters()[0] == created0
    with pytest.raises(ValueError, match="corrupt tensor frame"):
        cons.recv().array()
    with pytest.raises(ValueError, match="corrupt tensor frame"):
        cons.recv_array()
    assert cons.stats.pinned_bytes == 0
    assert cons.stats.state == 2  # a bad frame is the message's problem, not the ring's


def test_honest_strided_frame_from_a_peer(big_pair):
    """A C producer may send with strides (a row pitch); it reads back as a view."""
    prod, cons = big_pair
    rows = np.arange(3 * 8, dtype=np.uint8).reshape(3, 8)
    prod.send(header(code=1, bits=8, shape=(3, 5), strides=(8, 1), data_size=21) + rows.tobytes()[:21],
              type_id=0xFFFF0000)
    with cons.recv_zero_copy() as rx:
        a = rx.array()
        assert a.shape == (3, 5) and np.array_equal(a, rows[:, :5])
        t = torch.from_dlpack(rx)
        assert t.stride() == (8, 1) and torch.equal(t, torch.from_numpy(rows[:, :5].copy()))
        del a, t


# ---------------------------------------------------------------- two processes

def test_two_process_child_produces(sock_path):
    child = popen_isolated("array_peer.py", "produce", sock_path)
    try:
        with tachyon.Bus.listen(sock_path, 1 << 20, timeout=30, role="consumer") as cons:
            for rounds in range(2):  # send_array, then send_array_zero_copy
                for name, _, want in array_cases.numpy_cases():
                    with cons.recv_zero_copy(timeout=30) as rx:
                        a = rx.array()
                        assert a.dtype == want.dtype and a.shape == want.shape, (rounds, name)
                        assert np.array_equal(a, want), (rounds, name)
                        del a
            for name, t in array_cases.torch_cases():
                with cons.recv_zero_copy(timeout=30) as rx:
                    got = torch.from_dlpack(rx)
                    assert got.dtype == t.dtype and torch.equal(got, t.contiguous()), name
                    del got
            with pytest.raises(tachyon.PeerClosedError):
                cons.recv(timeout=30)
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_two_process_child_consumes(sock_path):
    child = popen_isolated("array_peer.py", "consume", sock_path)
    try:
        with tachyon.Bus.listen(sock_path, 1 << 20, timeout=30, role="producer") as prod:
            for i, (name, sent, _) in enumerate(array_cases.numpy_cases()):
                prod.send_array(sent, i, timeout=30)
            for i, (name, t) in enumerate(array_cases.torch_cases()):
                prod.send_array(t, i, timeout=30)
            out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        lines = out.splitlines()
        want = [f"{n} ok" for n, _, _ in array_cases.numpy_cases()]
        want += [f"torch {n} ok" for n, _ in array_cases.torch_cases()]
        assert lines == want, out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
