"""Per-call cost of the Python API, one process, one CPU (where the time goes).

    python3 benchmarks/python/percall.py [--cpu 0] [--json PATH]

Both ends of one bus live in this process, so nothing crosses a core and
nothing waits: each figure is the interpreter plus the extension's own work
for one call (best of 15 timed blocks, per call or per message; the median
block is printed beside it). Baselines
show what the interpreter charges anyway: a loop turn, a call of a C method,
the clock, one byte read and written through an mmap (the pure-Python floor
does two of each per round trip).
"""
from __future__ import annotations

import mmap
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

BLOCK = 512  # calls per timed block (below the ring's room for 32 B messages)
REPEAT = 15


def _pair(capacity, tag):
    import tachyon

    out = {}
    path = C.sock_path(f"percall-{tag}")

    def srv():
        out["c"] = tachyon.Bus.listen(path, capacity, timeout=30, role="consumer")

    t = threading.Thread(target=srv)
    t.start()
    prod = tachyon.Bus.connect(path, timeout=30, role="producer")
    t.join()
    return prod, out["c"]


class Cost(float):
    """A per-call cost: the best block (the float value: the call's own cost
    when nothing interferes) and the median block (`.median`)."""

    def __new__(cls, best, med):
        o = super().__new__(cls, best)
        o.median = med
        return o

    def __sub__(self, other):
        om = getattr(other, "median", float(other))
        return Cost(float(self) - float(other), self.median - om)


def _time_blocks(setup, body, per, repeat=REPEAT):
    """Best and median over `repeat` blocks of (body's time / per); setup is
    untimed. This VM's speed swings by 1.5x from second to second, so the
    best block is the cost and the median says how much noise there was."""
    now = C.now_ns
    vals = []
    for _ in range(repeat + 1):  # the first block warms up
        setup()
        t0 = now()
        body()
        vals.append((now() - t0) / per)
    vals = vals[1:]
    return Cost(min(vals), C.median(vals))


def measure(size=32):
    import tachyon  # noqa: F401

    res = {}
    prod, cons = _pair(1 << 20, "a")
    payload = bytes(size)
    send, it = prod.send, iter(cons)
    nothing = lambda: None  # noqa: E731

    # --- baselines -------------------------------------------------------
    rng = range(BLOCK)
    lst = [payload] * BLOCK

    def loop_only():
        for _ in rng:
            pass

    res["baseline: loop turn"] = _time_blocks(nothing, loop_only, BLOCK)

    def c_call():
        f = payload.__len__
        for _ in rng:
            f()

    res["baseline: C method call (bytes.__len__)"] = _time_blocks(nothing, c_call, BLOCK) - res["baseline: loop turn"]
    now = C.now_ns

    def clock():
        for _ in rng:
            now()

    res["baseline: time.perf_counter_ns()"] = _time_blocks(nothing, clock, BLOCK) - res["baseline: loop turn"]
    mm = mmap.mmap(-1, 4096)

    def mm_rw():
        for _ in rng:
            mm[0] = 1
            mm[0] != 2  # noqa: B015

    res["baseline: mmap byte write + read/compare"] = _time_blocks(nothing, mm_rw, BLOCK) - res["baseline: loop turn"]

    def for_len():
        for v in lst:
            len(v)

    res["baseline: for v in list: len(v), per item"] = _time_blocks(nothing, for_len, BLOCK)

    loop = res["baseline: loop turn"]

    # --- producer side -------------------------------------------------
    def drain_all():
        while cons.try_recv() is not None:
            pass

    def sends():
        for _ in rng:
            send(payload)

    res[f"send({size} B)"] = _time_blocks(drain_all, sends, BLOCK) - loop

    def fill():
        drain_all()
        for _ in rng:
            send(payload)

    # --- consumer side -------------------------------------------------
    def nexts():
        for _ in rng:
            next(it)

    res["next(iter(bus)) -> Message"] = _time_blocks(fill, nexts, BLOCK) - loop

    def data_reads():
        for _ in rng:
            next(it).data

    res["next(iter(bus)).data"] = _time_blocks(fill, data_reads, BLOCK) - loop

    recv = cons.recv

    def recvs():
        for _ in rng:
            recv()

    res["recv()"] = _time_blocks(fill, recvs, BLOCK) - loop
    try_recv = cons.try_recv

    def try_recvs():
        for _ in rng:
            try_recv()

    res["try_recv() with a message"] = _time_blocks(fill, try_recvs, BLOCK) - loop
    res["try_recv() on an empty ring"] = _time_blocks(drain_all, try_recvs, BLOCK) - loop

    # --- zero-copy guards ---------------------------------------------
    szc, rzc = prod.send_zero_copy, cons.recv_zero_copy

    def zc_sends():
        for _ in rng:
            with szc(size) as g:
                with memoryview(g) as mv:
                    mv[:] = payload
                g.actual_size = size

    res["send_zero_copy + memoryview write + actual_size"] = _time_blocks(drain_all, zc_sends, BLOCK) - loop

    def zc_sends_bare():
        for _ in rng:
            with szc(size) as g:
                g.actual_size = size

    res["send_zero_copy + actual_size (no write)"] = _time_blocks(drain_all, zc_sends_bare, BLOCK) - loop

    def zc_recvs():
        for _ in rng:
            with rzc() as r:
                with memoryview(r) as mv:
                    mv[0]

    res["recv_zero_copy + memoryview read"] = _time_blocks(fill, zc_recvs, BLOCK) - loop

    def zc_recvs_bare():
        for _ in rng:
            with rzc():
                pass

    res["recv_zero_copy, enter/exit only"] = _time_blocks(fill, zc_recvs_bare, BLOCK) - loop

    def mv_only():
        for _ in rng:
            with memoryview(payload) as mv:
                mv[0]

    res["baseline: with memoryview(bytes) as mv: mv[0]"] = _time_blocks(nothing, mv_only, BLOCK) - loop

    # --- batches ---------------------------------------------------------
    drain = cons.drain_batch

    def one_drain():
        for _ in rng:
            send(payload)
            with drain() as b:
                for v in b:
                    len(v)

    res["send + drain_batch() of 1 + len(view)"] = _time_blocks(drain_all, one_drain, BLOCK) - loop
    res["drain_batch() of 1 + len(view) (minus send)"] = res["send + drain_batch() of 1 + len(view)"] - res[
        f"send({size} B)"]

    big = 1024
    many = [bytes(64)] * 256

    def fill_big():
        drain_all()
        for _ in range(big // 256):
            prod.send_many(many)

    def drain_big():
        with drain(big) as b:
            for v in b:
                len(v)

    res["drain_batch(1024) iterating views + len(view), per message"] = _time_blocks(fill_big, drain_big, big)

    def drain_big_noiter():
        with drain(big) as b:
            len(b)

    res["drain_batch(1024) without touching the views, per message"] = _time_blocks(fill_big, drain_big_noiter, big)

    def drain_big_index():
        with drain(big) as b:
            for i in range(len(b)):
                b[i]

    res["drain_batch(1024) b[i] for each, per message"] = _time_blocks(fill_big, drain_big_index, big)

    def send_many_body():
        for _ in range(big // 256):
            prod.send_many(many)

    res["send_many(256 x 64 B), per message"] = _time_blocks(drain_all, send_many_body, big)
    prod.close()
    cons.close()
    return res


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--cpu", type=int, default=0)
    args = p.parse_args(argv)
    C.pin(args.cpu)
    res = measure()
    print(f"per-call cost, one process on CPU {args.cpu} (best and median of {REPEAT} blocks of {BLOCK} calls; the "
          "loop turn is subtracted except where it says 'per message' or 'per item')")
    print(f"{'':62s} {'best':>8s} {'median':>8s}")
    for k, v in res.items():
        print(f"{k:62s} {float(v):8.1f} {v.median:8.1f} ns")
    C.write_json(args, {"benchmark": "percall", "cpu": args.cpu, "ns": {k: float(v) for k, v in res.items()},
                        "ns_median": {k: v.median for k, v in res.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
