"""Exports outlive their guard safely (R10) and never mask an error (R11).

A memoryview, a numpy array or a torch tensor held past the `with` block
keeps its slot: the producer cannot overwrite it (it gets BusFullError, or
waits) and the bytes stay intact; closing the bus does not unmap under it;
an exception inside the block propagates as itself."""
import gc
import sys
import threading
import time

import numpy as np
import pytest

import tachyon
from conftest import make_pair

try:
    import torch
except ImportError:
    torch = None

needs_torch = [pytest.mark.torch,
               pytest.mark.skipif(torch is None, reason="torch is not installed for this Python (the 3.10 job)")]
KINDS = ["memoryview", "numpy", pytest.param("torch", marks=needs_torch)]


def export(kind, guard):
    if kind == "memoryview":
        return memoryview(guard)
    if kind == "numpy":
        return np.from_dlpack(guard)
    return torch.from_dlpack(guard)


def contents(kind, obj):
    if kind == "torch":
        return bytes(obj.numpy())
    return bytes(obj)


def release(kind, obj):
    if kind == "memoryview":
        obj.release()


def mappings_of(path):
    """How many mappings of the bus's memfd (named after its socket path) we hold."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if f"memfd:{path} " in line)


@pytest.mark.parametrize("kind", KINDS)
def test_pinned_slot_is_never_overwritten(sock_path, kind):
    prod, cons = make_pair(sock_path, 4096)
    try:
        pinned = bytes(range(256)) * 4
        prod.send(pinned, type_id=1)
        with cons.recv_zero_copy(timeout=1) as rx:
            held = export(kind, rx)
        # the consumer goes on reading copies; the producer fills the ring
        sent = 0
        with pytest.raises(tachyon.BusFullError):
            for sent in range(100):
                prod.send(bytes([sent]) * 700, type_id=2)
                assert cons.recv(timeout=1).data == bytes([sent]) * 700
        assert sent < 10, "the producer never ran out of room: the pinned slot was reused"
        assert contents(kind, held) == pinned
        assert cons.stats.pinned_bytes >= 1088

        # a send that waits for room waits while the slot is held ...
        done = []
        t = threading.Thread(target=lambda: done.append(prod.send(b"W" * 700, type_id=3, timeout=10)))
        t.start()
        time.sleep(0.3)
        assert not done and t.is_alive(), "the producer got room while the slot was pinned"
        assert contents(kind, held) == pinned, "the pinned bytes changed"
        # ... and goes through once the last export is gone
        released = time.monotonic()
        release(kind, held)
        del held
        t.join(5)
        waited = time.monotonic() - released
        assert done == [None]
        assert cons.recv(timeout=1).data == b"W" * 700
        assert cons.stats.pinned_bytes == 0
        print(f"{kind}: {sent} messages flowed past the pinned slot, then BusFullError; a waiting send "
              f"completed {waited * 1e3:.1f} ms after the release")
    finally:
        prod.close()
        cons.close()


@pytest.mark.parametrize("source", ["recv_zero_copy", "drain_batch"])
@pytest.mark.parametrize("kind", KINDS)
def test_exports_readable_after_close(sock_path, kind, source):
    prod, cons = make_pair(sock_path, 4096)
    assert mappings_of(sock_path) == 2  # one per end
    payloads = [b"keep %d " % i * 20 for i in range(3)]
    for p in payloads:
        prod.send(p)
    held = []
    if source == "recv_zero_copy":
        for _ in payloads:
            with cons.recv_zero_copy(timeout=1) as rx:
                held.append(export(kind, rx))
    else:
        with cons.drain_batch(timeout=1) as batch:
            assert len(batch) == 3
            held = [export(kind, view) for view in batch]
    cons.close()
    prod.close()
    del cons, prod
    if source == "recv_zero_copy":
        del rx
    else:
        del batch
    gc.collect()
    # the producer's end is gone; the consumer's mapping lives on for the exports
    assert mappings_of(sock_path) == 1, "closing unmapped the region under live exports"
    assert [contents(kind, h) for h in held] == payloads
    for h in held:
        release(kind, h)
    del held, h
    gc.collect()
    assert mappings_of(sock_path) == 0, "the region stays mapped after its last export"
    print(f"{kind} from {source}: read after close; unmapped once the last export was gone")


class Mine(Exception):
    pass


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("guard", ["recv_zero_copy", "drain_batch"])
def test_rx_error_with_live_export_propagates_as_itself(pair, kind, guard):
    prod, cons = pair
    prod.send(b"first")
    prod.send(b"second")
    raised = Mine("inside the block")
    with pytest.raises(Mine) as ei:
        if guard == "recv_zero_copy":
            with cons.recv_zero_copy(timeout=1) as rx:
                held = export(kind, rx)
                raise raised
        else:
            with cons.drain_batch(max_msgs=1, timeout=1) as batch:
                held = export(kind, batch[0])
                raise raised
    assert ei.value is raised
    assert ei.value.__context__ is None and ei.value.__cause__ is None
    assert not getattr(ei.value, "__notes__", None)
    assert contents(kind, held) == b"first"  # consumed, still readable
    release(kind, held)
    del held
    assert cons.recv(timeout=1).data == b"second"
    assert cons.stats.pinned_bytes == 0


def tx_export(kind, tx):
    if kind == "memoryview":
        return memoryview(tx)
    return np.frombuffer(tx, dtype=np.uint8)


# torch.frombuffer is left out on purpose: it drops its buffer export at once
# and keeps only a reference to the guard, so no exporter can see it (use
# torch.from_dlpack on receive; SECURITY.md).
@pytest.mark.parametrize("kind", ["memoryview", "numpy"])
def test_tx_error_with_live_export_propagates_as_itself(pair, kind):
    prod, cons = pair
    raised = Mine("inside the block")
    with pytest.raises(Mine) as ei:
        with prod.send_zero_copy(size=8) as tx:
            held = tx_export(kind, tx)
            held[:] = b"abcdefgh" if kind == "memoryview" else 7
            tx.actual_size = 8
            raise raised
    exc = ei.value
    assert exc is raised and exc.args == ("inside the block",)
    if sys.version_info >= (3, 11):
        notes = getattr(exc, "__notes__", [])
        assert any("BufferError" in n for n in notes), notes
    else:
        assert isinstance(exc.__context__, BufferError)
    with pytest.raises(BufferError, match="release it first"):
        prod.send(b"x")
    assert cons.try_recv() is None  # nothing was published
    release(kind, held)
    del held
    gc.collect()
    prod.send(b"after")  # the reservation was rolled back when the export went
    assert cons.recv(timeout=1).data == b"after"
    assert cons.try_recv() is None
