"""Zero-copy guard lifetimes (docs/PYTHON_API.md "Zero-copy lifetimes", docs/RELIABILITY.md R10, R11)."""
import ctypes
import sys

import pytest

import tachyon

_GetBuffer = ctypes.pythonapi.PyObject_GetBuffer
_GetBuffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
_GetBuffer.restype = ctypes.c_int
PyBUF_WRITABLE = 0x0001


def get_writable_buffer(obj):
    """PyObject_GetBuffer(obj, PyBUF_WRITABLE): the exporter itself must refuse."""
    view = ctypes.create_string_buffer(256)  # larger than a Py_buffer
    _GetBuffer(obj, ctypes.addressof(view), PyBUF_WRITABLE)
    ctypes.pythonapi.PyBuffer_Release(ctypes.c_void_p(ctypes.addressof(view)))


def test_tx_guard_buffer_is_exactly_size(pair):
    prod, cons = pair
    with prod.send_zero_copy(size=5, type_id=9) as tx:
        assert tx.size == 5 and tx.actual_size == 5 and tx.type_id == 9
        with memoryview(tx) as mv:
            assert len(mv) == 5 and mv.format == "B" and not mv.readonly
            mv[:] = b"hello"
        tx.actual_size = 5
        tx.type_id = 10
    msg = cons.recv(timeout=1)
    assert (msg.type_id, msg.data) == (10, b"hello")
    with pytest.raises(BufferError, match="finished"):
        memoryview(tx)


def test_tx_default_actual_size_is_the_reserved_size(pair):
    """Forgetting actual_size sends the whole reservation, never an empty message."""
    prod, cons = pair
    with prod.send_zero_copy(size=5) as tx:
        with memoryview(tx) as mv:
            mv[:] = b"whole"
    assert cons.recv(timeout=1).data == b"whole"


def test_tx_exception_rolls_back(pair):
    prod, cons = pair
    with pytest.raises(RuntimeError, match="mine"):
        with prod.send_zero_copy(size=10) as tx:
            tx.actual_size = 10
            raise RuntimeError("mine")
    assert cons.try_recv() is None
    prod.send(b"after")
    assert cons.recv(timeout=1).data == b"after"


def test_tx_live_view_clean_exit(pair):
    prod, cons = pair
    with pytest.raises(BufferError, match="memoryview.*still alive"):
        with prod.send_zero_copy(size=4) as tx:
            mv = memoryview(tx)
            mv[:] = b"abcd"
            tx.actual_size = 4
    assert cons.try_recv() is None  # nothing published
    with pytest.raises(BufferError, match="a zero-copy send still has a live memoryview; release it first"):
        prod.send(b"x")
    with pytest.raises(BufferError, match="release it first"):
        prod.send_many([b"x"])
    with pytest.raises(BufferError, match="release it first"):
        prod.send_zero_copy(size=1)
    mv.release()  # the reservation is rolled back now
    prod.send(b"next")
    assert cons.recv(timeout=1).data == b"next"
    assert cons.try_recv() is None


def test_tx_live_view_with_user_exception(pair):
    prod, cons = pair
    with pytest.raises(KeyError) as ei:
        with prod.send_zero_copy(size=4) as tx:
            mv = memoryview(tx)
            raise KeyError("user")
    exc = ei.value
    assert exc.args == ("user",)  # propagates unchanged
    if sys.version_info >= (3, 11):
        assert any("BufferError" in n and "memoryview" in n for n in exc.__notes__)
    else:
        assert isinstance(exc.__context__, BufferError)
    with pytest.raises(BufferError, match="release it first"):
        prod.send(b"x")
    del mv
    prod.send(b"ok")
    assert cons.recv(timeout=1).data == b"ok"


def test_tx_guard_dropped_without_with(pair):
    prod, cons = pair
    g = prod.send_zero_copy(size=8)
    with pytest.raises(tachyon.TachyonError, match="zero-copy send is open"):
        prod.send(b"x")
    del g  # rolled back
    prod.send(b"y")
    assert cons.recv(timeout=1).data == b"y"


def test_acquire_tx_rx_names(pair):
    prod, cons = pair
    with prod.acquire_tx(3) as tx:
        memoryview(tx)[:] = b"old"
        tx.actual_size = 3
    with cons.acquire_rx() as rx:
        assert bytes(rx) == b"old"
    prod.flush()


def test_rx_guard_readonly_and_spent(pair):
    prod, cons = pair
    prod.send(b"payload", type_id=4)
    with cons.recv_zero_copy(timeout=1) as rx:
        assert rx.type_id == 4 and rx.actual_size == 7
        with memoryview(rx) as mv:
            assert mv.readonly and mv == b"payload"
        with pytest.raises(TypeError):
            memoryview(rx)[0:1] = b"x"  # memoryview itself refuses
        with pytest.raises(BufferError, match="read-only"):
            get_writable_buffer(rx)  # and so does our exporter
        kept = memoryview(rx)
    for attempt in (lambda: memoryview(rx), lambda: rx.type_id, lambda: rx.actual_size, lambda: rx.__dlpack__()):
        with pytest.raises(BufferError, match="spent"):
            attempt()
    assert kept == b"payload"  # an export made inside the block stays valid
    assert cons.stats.pinned_bytes > 0
    kept.release()
    assert cons.stats.pinned_bytes == 0


def test_rx_exception_consumes_and_propagates(pair):
    prod, cons = pair
    prod.send(b"one")
    prod.send(b"two")
    with pytest.raises(ZeroDivisionError):
        with cons.recv_zero_copy(timeout=1) as rx:
            mv = memoryview(rx)  # alive at exit: never raises, never masks
            1 / 0
    assert mv == b"one"
    del mv
    assert cons.recv(timeout=1).data == b"two"  # "one" was consumed


def test_batch_indexing_and_spent(pair):
    prod, cons = pair
    prod.send_many([bytes([i]) * (i + 1) for i in range(5)], type_id=2)
    with cons.drain_batch(max_msgs=3, timeout=1) as batch:
        assert len(batch) == 3
        assert bytes(batch[0]) == b"\x00" and bytes(batch[-1]) == b"\x02" * 3
        assert [len(v) for v in batch] == [1, 2, 3]
        assert batch[1].type_id == 2 and batch[1].actual_size == 2
        with pytest.raises(IndexError):
            batch[3]
        with pytest.raises(IndexError):
            batch[-4]
        view = batch[2]
    with pytest.raises(BufferError, match="spent"):
        batch[0]
    with pytest.raises(BufferError, match="spent"):
        view.type_id
    with pytest.raises(BufferError, match="spent"):
        len(view)
    with cons.drain_batch(timeout=1) as batch:
        assert len(batch) == 2


def test_batch_iterator(pair):
    """iter(batch) yields the views in ring order, keeps the batch alive,
    stays exhausted once it ran out, and raises at its next next() once the
    batch is spent, as batch[i] does."""
    prod, cons = pair
    prod.send_many([bytes([i]) * (i + 1) for i in range(4)], type_id=3)
    with cons.drain_batch(max_msgs=4, timeout=1) as batch:
        it = iter(batch)
        assert iter(it) is it
        first = next(it)
        del batch  # the iterator holds it
        assert bytes(first) == b"\x00" and first.type_id == 3
        assert [bytes(v) for v in it] == [b"\x01" * 2, b"\x02" * 3, b"\x03" * 4]
        with pytest.raises(StopIteration):
            next(it)
        with pytest.raises(StopIteration):
            next(it)
    prod.send_many([b"a", b"b"])
    with cons.drain_batch(timeout=1) as batch:
        it = iter(batch)
        assert bytes(next(it)) == b"a"
    with pytest.raises(BufferError, match="spent"):
        next(it)


def test_slots_released_in_ring_order(pair):
    """A live export holds back every later slot; all go back once it dies."""
    prod, cons = pair
    for i in range(3):
        prod.send(bytes([i]) * 100)
    with cons.recv_zero_copy(timeout=1) as first:
        held = memoryview(first)
    with cons.recv_zero_copy(timeout=1) as second:
        pass
    assert cons.recv(timeout=1).data == b"\x02" * 100  # copies flow meanwhile
    assert cons.stats.pinned_bytes == 3 * 192  # the first slot holds back the two after it
    held.release()
    assert cons.stats.pinned_bytes == 0


def test_drain_batch_never_empty(pair):
    prod, cons = pair
    with pytest.raises(tachyon.TachyonTimeoutError):
        cons.drain_batch(timeout=0.05)
    with pytest.raises(ValueError):
        cons.drain_batch(max_msgs=0)
