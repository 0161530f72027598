"""DLPack hand-over: drain_batch returning -> torch.from_dlpack(view) returning.

    python3 benchmarks/python/dlpack.py [--rounds N] [--per-round 10]
                                        [--big 67108864] [--small 64]
                                        [--capacity 268435456] [--cpus 0,1]
                                        [--json PATH]

A spawned producer (second CPU) sends one message at a time, alternating
--big and --small bytes, and waits for the consumer's go-ahead before the
next, so it is idle while the consumer (this process, first CPU) times

    batch = bus.drain_batch(1)      # t0 right after it returns
    with batch:
        t = torch.from_dlpack(batch[0])
                                    # t1 right after it returns
        del t

Zero-copy means the hand-over does not depend on the size: the result is
the median over rounds of the per-round ratio p50(big) / p50(small).

Writing --big bytes evicts the consumer's working set from the caches the
two vCPUs share (on this VM the hand-over right after a 64 MiB write is
~20x slower, for any size). So the small message is measured twice: right
after the producer copied --big bytes into a private scratch buffer (the
same cache footprint; the ratio the target uses) and with no copy before it.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def _producer(path, plan, count, cpu, ctrl):
    """plan: a cycle of (size, pollute): pollute = copy that many bytes into a
    private scratch buffer first (the same cache footprint as sending them)."""
    C.pin(cpu)
    try:
        import tachyon

        bus = tachyon.Bus.connect(path, timeout=30, role="producer")
        payloads = {s: bytes(s) for s, _ in plan}
        biggest = max(max(s, p) for s, p in plan)
        scratch_src, scratch_dst = bytearray(biggest), bytearray(biggest)
        src, dst = C.buffer_addr(scratch_src), C.buffer_addr(scratch_dst)
        lib = C.native()
        ctrl.send("ok")
        for i in range(count):
            size, pollute = plan[i % len(plan)]
            if pollute:
                lib.memcpy_ns(dst, src, pollute, 1)
            bus.send(payloads[size], 1, timeout=None)
            if ctrl.recv() != "next":
                break
        bus.close()
    except BaseException:
        C.report_failure(ctrl)
        raise


def run(rounds, per_round, big, small, capacity, cpus):
    import tachyon
    import torch

    C.pin(cpus[0])
    path = C.sock_path("dlpack")
    ctx = C.spawn_ctx()
    ctrl, ctrl_child = ctx.Pipe()
    # big; small after the same cache pollution as a big copy; small alone
    plan = [(big, 0), (small, big), (small, 0)]
    keys = ["big", "small", "small_clean"]
    warm = 2
    total = len(plan) * (warm + rounds * per_round)
    C.native()
    proc = ctx.Process(target=_producer, args=(path, plan, total, cpus[1], ctrl_child), daemon=True)
    proc.start()
    lat = {k: [] for k in keys}
    per = {k: [] for k in keys}
    bus = None
    try:
        bus = tachyon.Bus.listen(path, capacity, timeout=30, role="consumer")
        bus.set_polling_mode(1)
        if not ctrl.poll(60) or ctrl.recv() != "ok":
            raise RuntimeError("producer failed to start")
        drain, from_dlpack, now = bus.drain_batch, torch.from_dlpack, C.now_ns

        def one():
            batch = drain(1)
            t0 = now()
            with batch:
                t = from_dlpack(batch[0])
                t1 = now()
                n = t.numel()
                del t
            ctrl.send("next")
            return n, t1 - t0

        for _ in range(len(plan) * warm):
            one()
        for r in range(rounds):
            rl = {k: [] for k in keys}
            for i in range(len(plan) * per_round):
                n, dt = one()
                k = keys[i % len(plan)]
                if n != plan[i % len(plan)][0]:
                    raise RuntimeError(f"out of step: got {n} bytes for {k}")
                rl[k].append(dt)
            for k in keys:
                lat[k].extend(rl[k])
                per[k].append(C.percentile(sorted(rl[k]), 50))
            C.progress(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {per[k][-1]:.0f} ns" for k in keys))
    finally:
        if bus is not None:
            bus.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    res = {"benchmark": "dlpack", "big": big, "small": small, "capacity": capacity, "cpus": list(cpus),
           "rounds": rounds, "per_round": per_round, "torch": torch.__version__,
           "big_summary": C.summary(lat["big"]), "small_summary": C.summary(lat["small"]),
           "small_clean_summary": C.summary(lat["small_clean"]),
           "round_big": per["big"], "round_small": per["small"], "round_small_clean": per["small_clean"]}
    res.update(C.paired(per["big"], per["small"]))
    res["vs_clean"] = C.paired(per["big"], per["small_clean"])
    return res


def print_result(r):
    print(f"DLPack hand-over (drain_batch return -> torch.from_dlpack return), capacity {r['capacity']}, cpus "
          f"{r['cpus']}, {r['rounds']} rounds x {r['per_round']} each, torch {r['torch']}")
    for key, size, what in (("big_summary", r["big"], ""),
                            ("small_summary", r["small"], f" (after a {r['big']}-byte copy by the producer)"),
                            ("small_clean_summary", r["small"], " (no copy before)")):
        d = r[key]
        print(f"{size:>10d} B: p50 {C.fmt_ns(d['p50'])}, p99 {C.fmt_ns(d['p99'])}, min {C.fmt_ns(d['min'])}{what}")
    print(f"ratio p50 big/small, same cache pollution: median {r['ratio_median']:.3f} (min {r['ratio_min']:.3f}, "
          f"max {r['ratio_max']:.3f})")
    v = r["vs_clean"]
    print(f"ratio p50 big/small without it:           median {v['ratio_median']:.3f} (min {v['ratio_min']:.3f}, "
          f"max {v['ratio_max']:.3f})")


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--big", type=int, default=64 << 20)
    p.add_argument("--small", type=int, default=64)
    p.add_argument("--capacity", type=int, default=256 << 20)
    args = p.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 12)
    r = run(rounds, args.per_round, args.big, args.small, args.capacity, C.cpu_pair(args))
    print_result(r)
    C.write_json(args, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
