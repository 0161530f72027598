"""asyncio on a tcp:// bus (docs/PYTHON_API.md, "Across hosts"): recv_async,
send_async and ``async for`` wait in the event loop on the socket itself;
random cancellations lose no message and repeat none; a send without credit
waits for it (BusFullError after its timeout); the loop keeps running."""
import asyncio
import random
import threading
import time

import pytest

zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (pip install 'tachyon-ipc[net]')")

import tachyon  # noqa: E402
from test_net import local_pair  # noqa: E402

MARGIN = 5


async def gaps(stop, out):
    """The loop's longest gap between two 1 ms ticks."""
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.monotonic()
        out.append(now - last)
        last = now


def test_recv_async_with_random_cancellations():
    """A producer thread sends 3000 numbered messages at an uneven pace; the
    loop receives them through recv_async calls of which hundreds are
    cancelled by a short wait_for: every number arrives once, in order."""
    cons, prod = local_pair(capacity=1 << 16)
    count = 3000

    def produce():
        rng = random.Random(1)
        for i in range(count):
            prod.send(i.to_bytes(4, "little") * rng.randint(1, 64), type_id=7, timeout=10)
            # pauses well over the loop's 1 ms timer granularity, so that
            # the short wait_for below (0.1 or 1 ms) expires in them for sure
            if rng.random() < 0.1:
                time.sleep(0.004)
        prod.close()

    async def main():
        stop, ticks = threading.Event(), []
        ticker = asyncio.ensure_future(gaps(stop, ticks))
        rng = random.Random(2)
        got, cancelled = [], 0
        while True:
            try:
                m = await asyncio.wait_for(cons.recv_async(timeout=10),
                                           rng.choice([None, 0.0001, 0.001]))
            except asyncio.TimeoutError:
                cancelled += 1
                continue
            except tachyon.PeerClosedError:
                break
            assert m.type_id == 7
            n = int.from_bytes(m.data[:4], "little")
            assert m.data == n.to_bytes(4, "little") * (len(m.data) // 4)
            got.append(n)
        stop.set()
        await ticker
        return got, cancelled, max(ticks)

    t = threading.Thread(target=produce)
    t.start()
    try:
        got, cancelled, gap = asyncio.run(main())
    finally:
        t.join()
        cons.close()
    print(f"{len(got)} messages, {cancelled} receives cancelled, longest loop gap {gap * 1e3:.1f} ms")
    assert got == list(range(count))
    assert cancelled > 100
    assert gap < 0.2 * MARGIN


def test_send_async_waits_for_credit_and_async_for():
    """Without credit a send_async waits (BusFullError after its timeout);
    once the consumer takes messages it goes on; ``async for`` ends at the
    producer's close after the last message."""
    cons, prod = local_pair(capacity=1 << 14)

    async def produce():
        sent = 0
        with pytest.raises(tachyon.BusFullError):
            while True:  # until the credit (16 KiB) is spent
                await prod.send_async(b"x" * 1000, type_id=1, timeout=0.2)
                sent += 1
        t0 = time.monotonic()
        await prod.send_async(b"last", type_id=2, timeout=10)
        prod.close()
        return sent, time.monotonic() - t0

    def consume(box):
        time.sleep(0.3)

        async def drain():
            return [m.type_id async for m in cons]
        box["types"] = asyncio.run(drain())

    box = {}
    t = threading.Thread(target=consume, args=(box,))
    t.start()
    try:
        sent, waited = asyncio.run(produce())
    finally:
        t.join()
        cons.close()
    print(f"{sent} messages before the credit ran out; the next waited {waited * 1e3:.1f} ms")
    assert 0 < sent < 17
    assert box["types"] == [1] * sent + [2]
    assert waited < 10
