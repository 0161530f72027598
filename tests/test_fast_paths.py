"""The receive fast paths with the peer in another process: a receive that
finds the ring empty first polls with the GIL held (only when the peer is
not in this process), and drain_batch(max_msgs=1) goes through the batch
form of that poll. Also: the reused Message, guard and view objects carry
no state from their previous message."""
import sys

import tachyon
from conftest import ISOLATED, popen_isolated

sys.path.insert(0, str(ISOLATED))
from streamlib import check, sizes  # noqa: E402

CAPACITY = 4096
MAX_SIZE = 512
COUNT = 5000


def test_drain_batch_of_one_across_processes(sock_path):
    seed = 99
    sz = sizes(seed, COUNT, MAX_SIZE)
    proc = popen_isolated("producer.py", sock_path, "send", COUNT, seed, MAX_SIZE)
    seq = 0
    try:
        with tachyon.Bus.listen(sock_path, CAPACITY, timeout=30) as bus:
            try:
                while True:
                    with bus.drain_batch(1, timeout=30) as batch:
                        assert len(batch) == 1
                        check(seq, sz[seq], bytes(batch[0]))
                        seq += 1
            except tachyon.PeerClosedError:
                pass
    finally:
        out, err = proc.communicate(timeout=60)
    print(f"drain_batch(1): {seq} messages")
    assert proc.returncode == 0, err
    assert seq == COUNT


def test_reused_objects_start_fresh(pair):
    prod, cons = pair
    it = iter(cons)
    for i in range(200):
        prod.send(bytes([i & 0xFF]) * (i % 7), type_id=i)
        m = next(it)
        assert (m.type_id, m.size, m.data) == (i, i % 7, bytes([i & 0xFF]) * (i % 7))
        del m
        with prod.send_zero_copy(8, type_id=i) as g:
            assert (g.size, g.actual_size, g.type_id) == (8, 8, i)
            with memoryview(g) as mv:
                mv[:3] = b"abc"
            g.actual_size = 3
        with cons.recv_zero_copy() as rx:
            assert (rx.type_id, rx.actual_size, bytes(rx)) == (i, 3, b"abc")
        prod.send_many([b"x" * (i % 5), b"yy"], type_id=i)
        with cons.drain_batch() as b:
            assert [(v.type_id, len(v)) for v in b] == [(i, i % 5), (i, 2)]
