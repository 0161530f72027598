"""asyncio (docs/PYTHON_API.md, "asyncio"): recv_async, async iteration,
send_async; cancellation loses nothing (10,000 random cancellations against a
checksummed stream from another process); the event loop is never held for
long; the typing of it all under mypy --strict."""
import asyncio
import os
import random
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

import tachyon
from conftest import REPO, make_pair, popen_isolated

MARGIN = 5


def run(coro):
    return asyncio.run(coro)


def test_recv_async_and_timeout(pair):
    prod, cons = pair

    async def main():
        with pytest.raises(tachyon.TachyonTimeoutError):
            await cons.recv_async(timeout=0.05)
        with pytest.raises(tachyon.TachyonTimeoutError):
            await cons.recv_async(timeout=0)

        async def later():
            await asyncio.sleep(0.05)
            prod.send(b"late", type_id=3)

        task = asyncio.ensure_future(later())
        m = await cons.recv_async(timeout=5)
        await task
        assert (m.data, m.type_id) == (b"late", 3)

    run(main())


def test_async_for_until_peer_closes(pair):
    prod, cons = pair

    async def main():
        for i in range(5):
            await prod.send_async(bytes([i]))
        prod.close()
        return [m.data[0] async for m in cons]

    assert run(main()) == list(range(5))


def test_close_wakes_recv_async(pair):
    prod, cons = pair

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, cons.close)
        t0 = time.monotonic()
        with pytest.raises(tachyon.BusClosedError):
            await cons.recv_async(timeout=10)
        return time.monotonic() - t0

    took = run(main())
    print(f"close woke recv_async after {took * 1e3:.1f} ms")
    assert took < 0.1 + 0.2 * MARGIN


def test_send_async_back_pressure(sock_path):
    prod, cons = make_pair(sock_path, 1 << 12)
    try:
        async def main():
            # fill the ring: then send_async waits, and a timeout is BusFullError
            while True:
                try:
                    prod.send(b"f" * 200, timeout=0)
                except tachyon.BusFullError:
                    break
            with pytest.raises(tachyon.BusFullError):
                await prod.send_async(b"x" * 200, timeout=0.05)

            async def drain():
                got = 0
                while True:
                    m = await cons.recv_async(timeout=10)
                    if m.type_id == 9:
                        return got
                    got += 1

            consumer = asyncio.ensure_future(drain())
            for i in range(500):
                await prod.send_async(struct.pack("<I", i) * 50, type_id=1)
            await prod.send_async(b"end", type_id=9)
            return await consumer

        got = run(main())
        assert got >= 500
    finally:
        prod.close()
        cons.close()


def _fill(prod):
    n = 0
    while True:
        try:
            prod.send(b"f" * 100, timeout=0)
        except tachyon.BusFullError:
            return n
        n += 1


def test_send_async_sleeps_while_the_ring_is_full(sock_path):
    """A send waiting for room costs the event loop nothing while the ring
    stays full (the waiter thread sleeps on the producer wait word; retrying
    in asyncio.sleep steps of up to 2 ms cost the loop's thread ~50 ms of
    CPU per second here), and is woken when the consumer frees room."""
    prod, cons = make_pair(sock_path, 1 << 12)
    freed = []

    def consumer():
        time.sleep(1.0)
        freed.append(time.monotonic())
        while cons.recv(timeout=10).type_id != 9:
            pass

    try:
        async def main():
            filled = _fill(prod)
            t = threading.Thread(target=consumer)
            t.start()
            cpu0 = time.thread_time()
            await prod.send_async(b"z" * 100, type_id=9, timeout=10)
            sent = time.monotonic()
            cpu = time.thread_time() - cpu0
            t.join()
            return filled, cpu, sent - freed[0]

        filled, cpu, woke = run(main())
        print(f"ring full with {filled} messages; event loop CPU while waiting 1 s: "
              f"{cpu * 1e3:.2f} ms; sent {woke * 1e3:.2f} ms after the consumer began freeing room")
        assert filled > 0
        assert cpu < 0.015
        assert woke < 0.05 * MARGIN
    finally:
        prod.close()
        cons.close()


def test_close_wakes_send_async(pair):
    prod, cons = pair

    async def main():
        _fill(prod)
        asyncio.get_running_loop().call_later(0.1, prod.close)
        t0 = time.monotonic()
        with pytest.raises(tachyon.BusClosedError):
            await prod.send_async(b"x" * 100, timeout=10)
        return time.monotonic() - t0

    took = run(main())
    print(f"close woke send_async after {took * 1e3:.1f} ms")
    assert took < 0.1 + 0.2 * MARGIN


def test_cancellation_loses_nothing(sock_path):
    """A stream of checksummed messages from another process, received by
    recv_async tasks cancelled at random moments: every message arrives once,
    in order, and the checksum the producer sent last matches."""
    count, seed = 40000, 4242
    want_cancels = 10000
    box = {}

    import threading

    t = threading.Thread(target=lambda: box.setdefault(
        "bus", tachyon.Bus.listen(sock_path, 1 << 14, timeout=20, role="consumer")))
    t.start()
    proc = popen_isolated("wait_peer.py", "stream", sock_path, count, seed)
    t.join()
    cons = box["bus"]
    rng = random.Random(seed)

    async def main():
        nxt, crc, cancels, final = 0, 0, 0, None
        cap = time.monotonic() + 120  # wall-time cap
        while final is None and time.monotonic() < cap:
            task = asyncio.ensure_future(cons.recv_async(timeout=30))
            r = rng.random()
            if cancels < want_cancels and r < 0.8:
                # cancel at a random point: before it ran, while it spins,
                # or while its waiter thread waits
                if r < 0.2:
                    await asyncio.sleep(0)
                elif r < 0.4:
                    await asyncio.sleep(rng.random() * 0.0003)
                task.cancel()
            try:
                m = await task
            except asyncio.CancelledError:
                cancels += 1
                continue
            if m.type_id == 1:
                final = struct.unpack("<I", m.data)[0]
                break
            seq = struct.unpack_from("<Q", m.data)[0]
            assert seq == nxt, f"expected message {nxt}, got {seq}"
            crc = zlib.crc32(m.data, crc)
            nxt += 1
        return nxt, crc, cancels, final

    try:
        nxt, crc, cancels, final = run(main())
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cons.close()
    print(f"{nxt} of {count} messages in order through {cancels} cancellations; "
          f"checksum {'matches' if crc == final else 'DIFFERS'}")
    assert proc.returncode == 0, err
    assert nxt == count
    assert cancels >= want_cancels
    assert crc == final


def test_event_loop_is_not_held(sock_path):
    """A ticker task measures the loop's worst gap while recv_async takes a
    bursty stream from another process (and waits through its pauses)."""
    count = 20000
    box = {}
    import threading

    t = threading.Thread(target=lambda: box.setdefault(
        "bus", tachyon.Bus.listen(sock_path, 1 << 14, timeout=20, role="consumer")))
    t.start()
    proc = popen_isolated("wait_peer.py", "stream", sock_path, count, 7)
    t.join()
    cons = box["bus"]

    async def main():
        gaps = []
        stop = False

        async def ticker():
            last = time.perf_counter()
            while not stop:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last - 0.001)
                last = now

        tick = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.01)
        got = 0
        async for m in cons:
            if m.type_id == 1:
                break
            got += 1
        stop = True
        await tick
        gaps.sort()
        return got, gaps[-1], gaps[len(gaps) * 99 // 100], len(gaps)

    try:
        got, worst, p99, ticks = run(main())
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cons.close()
    print(f"{got} messages; event loop ticker lateness over {ticks} ticks: "
          f"worst {worst * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")
    assert got == count
    assert worst < 0.05


TYPING_CHECK = '''
import asyncio
from typing import List, Optional

import tachyon


async def consume(bus: tachyon.Bus) -> int:
    m: tachyon.Message = await bus.recv_async(timeout=1.0)
    total = m.size
    async for msg in bus:
        total += len(msg.data)
    await bus.send_async(b"x", type_id=3, timeout=None)
    return total


def pick(buses: List[tachyon.Bus], t: Optional[float]) -> List[tachyon.TachyonBus]:
    return tachyon.wait(buses, timeout=t)


async def wrong(bus: tachyon.Bus) -> None:
    await bus.recv_async(timeout="soon")  # E: the timeout is a float
    tachyon.wait(bus)  # E: an iterable of buses, not one
'''


def test_typing(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed for this Python")
    good = TYPING_CHECK.split("async def wrong")[0]
    (tmp_path / "good.py").write_text(good)
    (tmp_path / "bad.py").write_text(TYPING_CHECK)
    env = dict(os.environ)
    env["MYPYPATH"] = str(REPO)

    def mypy(name):
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
             "--cache-dir", str(tmp_path / "cache"), str(tmp_path / name)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=240)

    proc = mypy("good.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = mypy("bad.py")
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, proc.stdout
