"""Bandwidth of 1 MiB messages against single-thread memcpy, paired by round.

    python3 benchmarks/python/bandwidth.py [--rounds N] [--window 0.3]
                                           [--size 1048576] [--capacity 8388608]
                                           [--cpus 0,1] [--json PATH]

Producer (spawned, second CPU): bus.send(payload, timeout=None) of one
preallocated bytes object, in a loop. Consumer (this process, first CPU,
pure-spin): `with bus.recv_zero_copy() as rx: numpy.frombuffer(rx,
uint64).sum()`: one numpy pass that reads every byte of the slot.

Every round: the producer pauses (it finishes its send); the two processes
run 2000 bare cache-line round trips (which vCPU placement this round had)
and then a bare ring for 0.1 s (_native.c: same slot size and capacity, the
producer memcpys the payload in, the consumer reads every word, both spin:
what moving these bytes between these two CPUs costs with nothing in the
way); this process measures single-thread memcpy at --size (hot buffers);
then the producer resumes and the bus runs for --window seconds. The result
is the median of the per-round ratios bus / memcpy (the target's
reference); bus / bare ring is shown beside it. Also printed: memcpy at
64 KiB, 1 MiB and 64 MiB, and the numpy sum alone over a hot --size buffer
(the consumer's own work per message).
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

# shared page: byte 0 command (0 run, 1 pause); byte 1 producer state (1 in
# the floors, 2 done with them); the c2c words at C2C_AT; the bare ring's
# control words at RING_CTL (head, tail, stop: 128 bytes apart) and its
# slots from RING_DATA on.
C2C_AT = 1024
C2C_ITERS = 2000
RING_CTL = 2048
RING_STOP = RING_CTL + 256
RING_DATA = 4096


def _producer(path, size, capacity, cpu, page_name, ready):
    C.pin(cpu)
    page = C.SharedPage(page_name, size=RING_DATA + capacity, create=False)
    m = page.map
    lib = C.native()
    seq = ctypes.c_uint64(0)
    ring_payload = bytearray(b"\x5a" * size)
    try:
        import tachyon

        bus = tachyon.Bus.connect(path, timeout=30, role="producer")
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        ready.send("ok")
        send = bus.send
        try:
            while True:
                if m[0] == 1:
                    m[1] = 1
                    if lib.c2c_pong(page.addr(C2C_AT), ctypes.byref(seq), C2C_ITERS) != 0:
                        raise TimeoutError("c2c: the consumer stopped")
                    lib.ring_produce(page.addr(RING_CTL), page.addr(RING_DATA), capacity // size, size,
                                     C.buffer_addr(ring_payload))
                    m[1] = 2
                    while m[0] == 1:
                        time.sleep(0.0005)
                    m[1] = 0
                send(payload, 1, timeout=None)
        except (tachyon.PeerClosedError, tachyon.PeerDeadError, tachyon.BusClosedError):
            pass
        bus.close()
    except BaseException:
        ready.send("error: " + traceback.format_exc())
        raise
    finally:
        del m
        page.close()


def numpy_sum_bandwidth(size, seconds=0.05):
    import numpy as np

    a = np.frombuffer(bytes(size), dtype=np.uint64)
    a.sum()
    n = 0
    t0 = time.perf_counter()
    while True:
        a.sum()
        n += 1
        t = time.perf_counter()
        if t - t0 >= seconds:
            return size * n / (t - t0)


def run(rounds, window, size, capacity, cpus, floor_window=0.1):
    import array

    import numpy as np
    import tachyon

    C.pin(cpus[0])
    lib = C.native()
    page = C.SharedPage(size=RING_DATA + capacity)
    m = page.map
    seq = ctypes.c_uint64(0)
    lat = array.array("q", bytes(8 * C2C_ITERS))
    path = C.sock_path("bw")
    ctx = C.spawn_ctx()
    ready_r, ready_w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_producer, args=(path, size, capacity, cpus[1], page.name, ready_w), daemon=True)
    proc.start()
    res = {"benchmark": "bandwidth", "size": size, "capacity": capacity, "cpus": list(cpus), "rounds": rounds,
           "window_s": window}
    bus = None
    try:
        bus = tachyon.Bus.listen(path, capacity, timeout=30, role="consumer")
        bus.set_polling_mode(1)
        if not ready_r.poll(60) or ready_r.recv() != "ok":
            raise RuntimeError("producer failed to start")
        rzc, frombuffer, u64 = bus.recv_zero_copy, np.frombuffer, np.uint64

        def take(timeout=None):
            with rzc(timeout) as rx:
                frombuffer(rx, u64).sum()

        def wait_state(v):
            t_end = time.monotonic() + 30
            while m[1] != v:
                time.sleep(0.0002)
                if time.monotonic() > t_end:
                    raise TimeoutError("the producer did not follow")

        def pause():
            m[RING_STOP:RING_STOP + 8] = bytes(8)
            m[0] = 1
            t_end = time.monotonic() + 30
            while m[1] != 1:  # keep draining until the producer is out of send()
                try:
                    take(0.001)
                except tachyon.TachyonTimeoutError:
                    pass
                if time.monotonic() > t_end:
                    raise TimeoutError("the producer did not pause")

        t_end = time.perf_counter() + 0.2  # warm-up
        while time.perf_counter() < t_end:
            take()
        bus_bw, cpy_bw, ratios, c2c, ring_bw = [], [], [], [], []
        ring_ns, ring_sum = ctypes.c_int64(0), ctypes.c_uint64(0)
        for r in range(rounds):
            pause()
            if lib.c2c_ping(page.addr(C2C_AT), ctypes.byref(seq), C.buffer_addr(lat), C2C_ITERS) != 0:
                raise TimeoutError("c2c: the producer stopped answering")
            c2c.append(C.percentile(sorted(lat[200:]), 50))
            k = lib.ring_consume(page.addr(RING_CTL), page.addr(RING_DATA), capacity // size, size,
                                 int(floor_window * 1e9), ctypes.byref(ring_ns), ctypes.byref(ring_sum))
            if k < 0:
                raise TimeoutError("bare ring: the producer stopped")
            ring_bw.append(k * size / (ring_ns.value / 1e9))
            wait_state(2)
            mc = C.memcpy_bandwidth(size, 0.03)
            m[0] = 0
            t_w = time.perf_counter() + 0.02  # the ring refills
            while time.perf_counter() < t_w:
                take()
            n = 0
            t0 = time.perf_counter()
            t_end = t0 + window
            while True:
                take()
                n += 1
                t = time.perf_counter()
                if t >= t_end:
                    break
            b = n * size / (t - t0)
            bus_bw.append(b)
            cpy_bw.append(mc)
            ratios.append(b / mc)
            C.progress(f"round {r + 1}/{rounds}: bus {b / 1e9:.2f} GB/s, memcpy {mc / 1e9:.2f} GB/s, ratio "
                       f"{b / mc:.3f}, bare ring {ring_bw[-1] / 1e9:.2f} GB/s, c2c p50 {c2c[-1]:.0f} ns")
    finally:
        if bus is not None:
            bus.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        del m
        page.close()
    res.update(bus_bytes_per_s=C.median(bus_bw), memcpy_bytes_per_s=C.median(cpy_bw), ratio_median=C.median(ratios),
               ratio_min=min(ratios), ratio_max=max(ratios), round_bus=bus_bw, round_memcpy=cpy_bw, ratios=ratios,
               round_c2c_p50=c2c, c2c_p50_median=C.median(c2c), by_placement=C.by_placement(c2c, ratios),
               bus_by_placement=C.by_placement(c2c, bus_bw), round_ring=ring_bw, ring_bytes_per_s=C.median(ring_bw),
               ring_by_placement=C.by_placement(c2c, ring_bw))
    res["vs_ring"] = C.paired(bus_bw, ring_bw)
    res["memcpy"] = {str(s): C.memcpy_bandwidth(s, 0.1) for s in (64 << 10, 1 << 20, 64 << 20)}
    res["numpy_sum_bytes_per_s"] = numpy_sum_bandwidth(size)
    return res


def print_result(r):
    print(f"bandwidth, {r['size']}-byte messages, capacity {r['capacity']}, cpus {r['cpus']}, {r['rounds']} rounds of "
          f"{r['window_s']} s (consumer: recv_zero_copy + numpy uint64 sum)")
    print(f"{'round':>5s} {'bus GB/s':>9s} {'memcpy':>9s} {'ratio':>7s} {'bare ring':>10s} {'bus/ring':>8s} "
          f"{'c2c p50':>8s}")
    for i, (b, mc, q, g, c) in enumerate(zip(r["round_bus"], r["round_memcpy"], r["ratios"], r["round_ring"],
                                             r["round_c2c_p50"]), 1):
        print(f"{i:5d} {b / 1e9:9.2f} {mc / 1e9:9.2f} {q:7.3f} {g / 1e9:10.2f} {b / g:8.3f} {c:6.0f} ns")
    print(f"bus        {r['bus_bytes_per_s'] / 1e9:8.2f} GB/s (median of rounds)")
    print(f"memcpy     {r['memcpy_bytes_per_s'] / 1e9:8.2f} GB/s at {r['size']} B, same rounds")
    print(f"ratio      {r['ratio_median']:8.3f} (median of per-round ratios; min {r['ratio_min']:.3f}, "
          f"max {r['ratio_max']:.3f})")
    for pl, d in r["by_placement"].items():
        print(f"           {pl} placement (C line p50 {'<' if pl == 'fast' else '>='} {C.PLACEMENT_SPLIT_NS} ns), "
              f"{d['rounds']} rounds: ratio {d['median']:.3f}, bus {r['bus_by_placement'][pl]['median'] / 1e9:.2f} "
              f"GB/s, bare ring {r['ring_by_placement'][pl]['median'] / 1e9:.2f} GB/s")
    v = r["vs_ring"]
    print(f"bus / bare ring: median {v['ratio_median']:.3f} (min {v['ratio_min']:.3f}, max {v['ratio_max']:.3f})")
    print(f"numpy sum  {r['numpy_sum_bytes_per_s'] / 1e9:8.2f} GB/s over a hot {r['size']} B buffer (consumer work alone)")
    for s, v in r["memcpy"].items():
        print(f"memcpy {int(s) >> 10:>7d} KiB: {v / 1e9:.2f} GB/s (in-process, _native.c)")


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--window", type=float, default=None)
    p.add_argument("--size", type=int, default=1 << 20)
    p.add_argument("--capacity", type=int, default=8 << 20)
    args = p.parse_args(argv)
    rounds = args.rounds or (6 if args.quick else 12)
    window = args.window or (0.15 if args.quick else 0.3)
    r = run(rounds, window, args.size, args.capacity, C.cpu_pair(args))
    print_result(r)
    C.write_json(args, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
