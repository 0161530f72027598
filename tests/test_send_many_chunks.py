"""send_many takes its items to the ring in chunks (one vectored send each):
what it reports sent, and what arrives, across chunk boundaries."""
import threading

import pytest

import tachyon
from conftest import make_pair


def drain_all(cons):
    out = []
    while True:
        try:
            batch = cons.drain_batch(timeout=0)
        except TimeoutError:
            return out
        with batch:
            out.extend(bytes(v) for v in batch)


def test_full_ring_mid_chunk_counts_what_went(sock_path):
    prod, cons = make_pair(sock_path, 1 << 14)  # 16 KiB: 128 slots of 128 B
    try:
        items = [i.to_bytes(2, "little") * 20 for i in range(300)]
        with pytest.raises(tachyon.BusFullError) as ei:
            prod.send_many(items)
        sent = ei.value.sent
        assert 64 < sent < 300  # stopped past the first chunk
        got = drain_all(cons)
        assert got == items[:sent]
        # the rest goes once there is room, in order
        assert prod.send_many(items[sent:sent + 50]) == 50
        assert drain_all(cons) == items[sent:sent + 50]
    finally:
        prod.close()
        cons.close()


def test_bad_item_after_a_chunk(sock_path):
    prod, cons = make_pair(sock_path, 1 << 16)
    try:
        items = [bytes([i]) * 3 for i in range(100)]
        items[70] = 12345  # not a buffer: the 70 before it still go
        with pytest.raises(TypeError):
            prod.send_many(items)
        assert drain_all(cons) == [bytes([i]) * 3 for i in range(70)]
    finally:
        prod.close()
        cons.close()


def test_mixed_buffers_and_waiting_past_a_full_ring(sock_path):
    prod, cons = make_pair(sock_path, 1 << 12)
    try:
        items = []
        for i in range(500):
            b = bytes([i % 251]) * (i % 90)
            items.append(b if i % 3 else bytearray(b) if i % 2 else memoryview(b))
        got = []

        def consume():
            while len(got) < len(items):
                with cons.drain_batch(timeout=10) as batch:
                    got.extend(bytes(v) for v in batch)

        t = threading.Thread(target=consume)
        t.start()
        assert prod.send_many(items, type_id=5, timeout=10) == 500
        t.join(20)
        assert got == [bytes(b) for b in items]
    finally:
        prod.close()
        cons.close()
