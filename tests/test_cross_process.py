"""Cross-process streams: a producer subprocess and a consumer here, random
sizes 0..capacity/2-64 with sequence numbers and checksums, a small ring so
the stream wraps thousands of times. Nothing lost, duplicated, reordered or torn."""
import sys
import time

import pytest

import tachyon
from conftest import ISOLATED, popen_isolated

sys.path.insert(0, str(ISOLATED))
from streamlib import check, sizes  # noqa: E402

CAPACITY = 4096
MAX_SIZE = CAPACITY // 2 - 64
COUNT = 100_000


def consume(bus, how, sz):
    seq = 0
    if how == "iter":
        for msg in bus:
            check(seq, sz[seq], msg.data)
            seq += 1
        return seq
    try:
        while True:
            if how == "batch":
                with bus.drain_batch(max_msgs=256, timeout=30) as batch:
                    for j in range(len(batch)):
                        check(seq, sz[seq], bytes(batch[j]))
                        seq += 1
            elif how == "zc":
                with bus.recv_zero_copy(timeout=30) as rx:
                    with memoryview(rx) as mv:
                        check(seq, sz[seq], mv.tobytes())
                    seq += 1
            elif how == "recv":
                msg = bus.try_recv()
                if msg is None:
                    msg = bus.recv(timeout=30)
                check(seq, sz[seq], msg.data)
                seq += 1
    except tachyon.PeerClosedError:
        return seq


def run_stream(sock_path, producer_mode, consumer_mode, count, seed, max_size, capacity):
    """A producer subprocess streams `count` messages into a bus we listen
    on; every one is checked. Asserts the producer's exit and the count."""
    sz = sizes(seed, count, max_size)
    proc = popen_isolated("producer.py", sock_path, producer_mode, count, seed, max_size)
    t0 = time.monotonic()
    try:
        with tachyon.Bus.listen(sock_path, capacity, timeout=30) as bus:
            got = consume(bus, consumer_mode, sz)
            stats = bus.stats
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    elapsed = time.monotonic() - t0
    print(f"{producer_mode}->{consumer_mode}: {got} messages in {elapsed:.2f} s, {count / elapsed:,.0f} msg/s, {stats}")
    assert proc.returncode == 0, err
    assert out.strip() == f"sent {count}"
    assert got == count
    assert stats.pinned_bytes == 0


@pytest.mark.parametrize(
    "producer_mode,consumer_mode",
    [("send", "iter"), ("many", "batch"), ("zc", "zc"), ("mixed", "recv")],
)
def test_stream(sock_path, producer_mode, consumer_mode):
    run_stream(sock_path, producer_mode, consumer_mode, COUNT, 1234 + len(producer_mode), MAX_SIZE, CAPACITY)


LARGE_CAPACITY = 8 << 20
LARGE_MAX = LARGE_CAPACITY // 2 - 64
LARGE_COUNT = 160


@pytest.mark.parametrize("producer_mode,consumer_mode", [("send", "zc"), ("many", "batch")])
def test_large_messages(sock_path, producer_mode, consumer_mode):
    """Messages up to 4 MiB: most are 256 KiB or more, which the producer
    copies with memcpy or non-temporal stores (whichever it measures faster,
    probing the other now and then), so both ways cross processes here."""
    seed = 99 + len(producer_mode)
    assert sum(s >= 256 * 1024 for s in sizes(seed, LARGE_COUNT, LARGE_MAX)) > LARGE_COUNT * 0.9
    run_stream(sock_path, producer_mode, consumer_mode, LARGE_COUNT, seed, LARGE_MAX, LARGE_CAPACITY)
