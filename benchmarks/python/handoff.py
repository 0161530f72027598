"""Receive here, process there: worker threads dropping zero-copy arrays.

    python3 benchmarks/python/handoff.py [--rounds N] [--sizes 64,65536]
                                         [--workers 1,2,4] [--capacity BYTES]
                                         [--cpus 0,1] [--quick] [--json PATH]

A spawned producer (second CPU) sends each run's messages with
send(timeout=None), as fast as the ring lets it. This process (first CPU)
receives each one with recv_zero_copy, wraps it with np.from_dlpack, reads
one element, and lets the array go, either right there ("here": the
receiving thread drops it) or through a queue.SimpleQueue to W worker
threads that read the element and drop it. The slot goes back to the
producer only when the array is dropped, so a release that waited for the
receiving thread's watchdog tick stalled the producer for up to 200 ms per
lap of the ring.

The ring (--capacity) holds at least 100 of the largest messages, 8 MiB
for 64 KiB: workers keep many messages in flight, and with a ring of a few
dozen slots the run measures the producer's laps instead (1 MiB, 15 slots of
64 KiB: about 0.2-0.5 with workers; pass --capacity to see it).

Each round runs every variant once, in turn; the result per variant is the
median over rounds of the per-round ratio rate(variant) / rate(here). The
workers' figure includes what the hand-over itself costs in Python (a
queue put and get, GIL switches between threads): the target is within 2x
of dropping here.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def _producer(path, plan, cpu, ctrl):
    """plan: (size, count) per run; each run starts on the consumer's "go"."""
    C.pin(cpu)
    try:
        import tachyon

        bus = tachyon.Bus.connect(path, timeout=30, role="producer")
        payloads = {s: bytes(s) for s, _ in plan}
        ctrl.send("ok")
        for size, count in plan:
            if ctrl.recv() != "go":
                break
            data, send = payloads[size], bus.send
            for i in range(count):
                send(data, i, timeout=None)
        bus.close()
    except BaseException:
        C.report_failure(ctrl)
        raise


def _receive(bus, count, workers):
    """Receive count messages; return the seconds from the first to the last
    drop. workers: 0 drops here, else that many threads drop."""
    import numpy as np

    recv, from_dlpack = bus.recv_zero_copy, np.from_dlpack
    if workers == 0:
        t0 = None
        for _ in range(count):
            with recv() as rx:
                a = from_dlpack(rx)
            if t0 is None:
                t0 = time.perf_counter()
            a[0]
            del a
        return time.perf_counter() - t0

    work = queue.SimpleQueue()
    done = threading.Barrier(workers + 1)

    def worker():
        get = work.get
        while (a := get()) is not None:
            a[0]
            del a
        done.wait()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    put = work.put
    t0 = None
    for _ in range(count):
        with recv() as rx:
            put(from_dlpack(rx))
        if t0 is None:
            t0 = time.perf_counter()
    for _ in threads:
        put(None)
    done.wait()
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    return elapsed


def run(rounds, sizes, workers, capacity, counts, cpus):
    import tachyon

    C.pin(cpus[0])
    variants = [0] + list(workers)
    plan = [(s, counts[s]) for _ in range(rounds + 1) for s in sizes for _ in variants]  # +1: warm-up
    path = C.sock_path("handoff")
    ctx = C.spawn_ctx()
    ctrl, ctrl_child = ctx.Pipe()
    proc = ctx.Process(target=_producer, args=(path, plan, cpus[1], ctrl_child), daemon=True)
    proc.start()
    rates = {s: {v: [] for v in variants} for s in sizes}
    ratios = {s: {v: [] for v in workers} for s in sizes}
    bus = None
    try:
        bus = tachyon.Bus.listen(path, capacity, timeout=30, role="consumer")
        if not ctrl.poll(60):
            raise RuntimeError("the producer did not start")
        msg = ctrl.recv()
        if msg != "ok":
            raise RuntimeError(f"the producer failed: {msg}")
        for r in range(rounds + 1):
            for s in sizes:
                this = {}
                for v in variants:
                    ctrl.send("go")
                    this[v] = counts[s] / _receive(bus, counts[s], v)
                if r == 0:
                    continue
                for v in variants:
                    rates[s][v].append(this[v])
                for v in workers:
                    ratios[s][v].append(this[v] / this[0])
            if r:
                C.progress(f"round {r}/{rounds}: " + ", ".join(
                    f"{s} B " + "/".join(f"{ratios[s][v][-1]:.2f}" for v in workers) for s in sizes))
    finally:
        if bus is not None:
            bus.close()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()
    res = {"benchmark": "handoff", "rounds": rounds, "capacity": capacity, "cpus": list(cpus),
           "workers": list(workers), "sizes": {}}
    for s in sizes:
        d = {"count": counts[s], "here_msgs_per_s": C.median(rates[s][0])}
        for v in workers:
            d[f"w{v}_msgs_per_s"] = C.median(rates[s][v])
            d[f"w{v}_ratio_median"] = C.median(ratios[s][v])
            d[f"w{v}_ratio_min"] = min(ratios[s][v])
            d[f"w{v}_ratio_max"] = max(ratios[s][v])
        res["sizes"][str(s)] = d
    return res


def print_result(r):
    print(f"receive here, process there: recv_zero_copy + np.from_dlpack, dropped here or by worker threads; "
          f"capacity {r['capacity']}, cpus {r['cpus']}, {r['rounds']} rounds")
    for s, d in r["sizes"].items():
        print(f"{int(s):>7d} B x {d['count']}: here {d['here_msgs_per_s'] / 1e3:8.1f} k msg/s")
        for v in r["workers"]:
            print(f"          {v} worker{'s' if v > 1 else ' '}: {d[f'w{v}_msgs_per_s'] / 1e3:8.1f} k msg/s, "
                  f"ratio to here {d[f'w{v}_ratio_median']:.2f} (rounds {d[f'w{v}_ratio_min']:.2f}.."
                  f"{d[f'w{v}_ratio_max']:.2f}; target >= 0.50)")


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="64,65536")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--capacity", type=int, default=0, help="ring bytes (0: room for 100 of the largest)")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    workers = [int(x) for x in args.workers.split(",")]
    rounds = args.rounds or (3 if args.quick else 7)
    capacity = args.capacity or 1 << 20
    while not args.capacity and capacity < 100 * (max(sizes) + 64):
        capacity <<= 1
    # two laps of the ring per run, and at least a few thousand messages
    counts = {s: max(2000 if args.quick else 5000, 2 * capacity // (s + 64)) for s in sizes}
    r = run(rounds, sizes, workers, capacity, counts, C.cpu_pair(args))
    print_result(r)
    C.write_json(args, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
