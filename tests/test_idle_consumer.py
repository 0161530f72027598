"""A consumer that takes a burst and then goes idle holds no freed room: once
a receive has taken everything up to the last head it saw (and every slot it
read is released), the producer sees an empty ring and can send a message
that needs the whole free ring, without waiting.

The layout (capacity 4096, max_payload 1984, a slot of 2048 for it): a first
round of 1024 bytes is read and the ring found empty (that publishes tail at
1024 on any version); then a burst of two 576-byte slots puts head at 2176.
A 1984-byte message there wraps behind 1920 bytes of padding, so it fits only
if tail moved past 1024: 2176 - 1024 + 1920 + 2048 > 4096."""
import time

import pytest

import tachyon
from conftest import make_pair

CAP = 4096
BIG = CAP // 2 - 64  # max_payload
BURST = [b"b" * 512, b"c" * 512]  # two 576-byte slots


@pytest.fixture
def ring(sock_path):
    prod, cons = make_pair(sock_path, CAP)
    yield prod, cons
    prod.close()
    cons.close()


def prepare(prod, cons):
    """Tail published at 1024, then the burst sent (head 2176)."""
    for _ in range(2):
        prod.send(b"a" * 448)
    assert [len(cons.recv(timeout=5).data) for _ in range(2)] == [448, 448]
    assert cons.try_recv() is None  # empty: publishes tail 1024
    for data in BURST:
        prod.send(data)


def occupancy_settles(prod, expected=0, bound=1.0):
    """Poll the producer end's view of the ring until it shows `expected`
    bytes in use; returns the seconds it took (None: not within bound)."""
    t0 = time.monotonic()
    while True:
        if prod.stats.ring_occupancy == expected:
            return time.monotonic() - t0
        if time.monotonic() - t0 > bound:
            return None
        time.sleep(0.001)


def big_send_works(prod, cons):
    prod.send(b"z" * BIG, type_id=7, timeout=0)  # no wait: the room must be there now
    m = cons.recv(timeout=5)
    assert (m.type_id, m.data) == (7, b"z" * BIG)


def take_recv(cons):
    return [cons.recv(timeout=5).data for _ in BURST]


def take_iter(cons):
    it = iter(cons)
    return [next(it).data for _ in BURST]


def take_try_recv(cons):
    out = []
    while len(out) < len(BURST):
        m = cons.try_recv()
        if m is not None:
            out.append(m.data)
    return out


def take_drain_batch(cons):
    out = []
    while len(out) < len(BURST):
        with cons.drain_batch(timeout=5) as batch:
            out += [bytes(v) for v in batch]
    return out


def take_recv_zero_copy(cons):
    out = []
    for _ in BURST:
        with cons.recv_zero_copy(timeout=5) as rx:
            out.append(bytes(rx))
    return out


def take_acquire_rx(cons):
    out = []
    for _ in BURST:
        rx = cons.acquire_rx(timeout=5)
        out.append(bytes(memoryview(rx)))
        del rx  # dropping the guard releases its slot
    return out


@pytest.mark.parametrize(
    "take",
    [take_recv, take_iter, take_try_recv, take_drain_batch, take_recv_zero_copy, take_acquire_rx],
    ids=lambda f: f.__name__[5:],
)
def test_idle_consumer_frees_its_room(ring, take):
    prod, cons = ring
    prepare(prod, cons)
    assert take(cons) == BURST
    # the consumer now does nothing at all
    took = occupancy_settles(prod)
    print(f"{take.__name__}: occupancy 0 after {took if took is None else f'{took * 1e3:.1f} ms'}")
    assert took is not None, f"the idle consumer still holds {prod.stats.ring_occupancy} bytes"
    big_send_works(prod, cons)


def test_pinned_slots_stay_held_until_released(ring):
    """A live zero-copy guard pins its slot (and every slot after it):
    tail must not pass it, so the room stays taken until it is released."""
    prod, cons = ring
    prepare(prod, cons)
    rx = cons.recv_zero_copy(timeout=5)  # pins the first burst slot
    assert cons.recv(timeout=5).data == BURST[1]  # read, but behind the pinned one
    assert occupancy_settles(prod, 0, bound=0.2) is None
    assert prod.stats.ring_occupancy == 1152
    with pytest.raises(tachyon.BusFullError):
        prod.send(b"z" * BIG, timeout=0)
    assert bytes(rx) == BURST[0]  # the pinned bytes were not overwritten
    rx.__exit__(None, None, None)
    took = occupancy_settles(prod)
    assert took is not None, f"still {prod.stats.ring_occupancy} bytes in use after the release"
    big_send_works(prod, cons)


def test_producer_waiting_for_ever_gets_the_room(ring):
    """timeout=None on a ring that is in fact empty must not wait for ever."""
    import threading

    prod, cons = ring
    prepare(prod, cons)
    assert take_recv(cons) == BURST
    done = threading.Event()
    box = {}

    def send():
        try:
            prod.send(b"z" * BIG, timeout=None)
        except BaseException as exc:  # surfaced below
            box["exc"] = exc
        done.set()

    t = threading.Thread(target=send, daemon=True)
    t0 = time.monotonic()
    t.start()
    finished = done.wait(5.0)
    print(f"send(timeout=None) returned after {time.monotonic() - t0:.3f} s")
    if not finished:
        cons.close()  # wakes the stuck send (BusClosedError) so the thread ends
        prod.close()
        t.join(5)
    assert finished, "send(timeout=None) waited for room an idle consumer never published"
    t.join()
    assert "exc" not in box, box
    assert cons.recv(timeout=5).data == b"z" * BIG
