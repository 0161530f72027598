"""Round-trip latency benchmark: ping-pong between this process and an echo
subprocess over two buses (one per direction).

    python -m tachyon bench [--size 32] [--count N] [--cpus A,B] [--capacity BYTES]

Prints min/p50/p90/p99/p99.9/max of the round trip in microseconds and the
round trips per second. Waits are hybrid (spin, then sleep): pass --pure-spin
to keep both consumers spinning (only with a free core for each process).
"""
import argparse
import array
import os
import subprocess
import sys
import threading
import time

from . import Bus, PeerClosedError

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m tachyon bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32, help="payload bytes per message (default 32)")
    p.add_argument("--count", type=int, default=100_000, help="timed round trips (default 100000)")
    p.add_argument("--warmup", type=int, default=2_000, help="untimed round trips first (default 2000)")
    p.add_argument("--cpus", default=None, help="pin this process to CPU A and the echo process to CPU B: A,B")
    p.add_argument("--capacity", type=int, default=1 << 16, help="ring capacity in bytes (default 65536)")
    p.add_argument("--pure-spin", action="store_true", help="consumers never sleep (needs two free cores)")
    p.add_argument("--echo", nargs=2, metavar=("PING", "PONG"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.size < 0 or args.count < 1 or args.warmup < 0:
        p.error("--size must be >= 0, --count >= 1, --warmup >= 0")
    args.cpu_pair = None
    if args.cpus:
        try:
            a, b = (int(x) for x in args.cpus.split(","))
        except ValueError:
            p.error("--cpus takes two CPU numbers: A,B")
        args.cpu_pair = (a, b)
    return args


def _pin(cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _echo(args):
    """The echo side: every message from PING goes back on PONG, zero-copy in, one copy out."""
    _pin(args.cpu_pair[1] if args.cpu_pair else None)
    ping_path, pong_path = args.echo
    with Bus.connect(ping_path, timeout=10, role="consumer") as ping, Bus.connect(
        pong_path, timeout=10, role="producer"
    ) as pong:
        if args.pure_spin:
            ping.set_polling_mode(1)
        try:
            while True:
                with ping.recv_zero_copy() as rx:
                    pong.send(rx, rx.type_id, timeout=None)
        except PeerClosedError:
            pass
    return 0


def _percentile(sorted_ns, q):
    k = min(len(sorted_ns) - 1, max(0, int(round(q / 100.0 * len(sorted_ns) + 0.5)) - 1))
    return sorted_ns[k]


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.echo:
        return _echo(args)
    cap_needed = 2 * (((args.size + 64 + 63) // 64) * 64)
    if args.capacity < cap_needed:
        print(f"--capacity {args.capacity} is too small for --size {args.size}: use >= {cap_needed}", file=sys.stderr)
        return 2

    base = f"/tmp/tachyon-bench-{os.getpid()}"
    ping_path, pong_path = base + "-ping.sock", base + "-pong.sock"
    cmd = [sys.executable, "-m", "tachyon", "bench", "--echo", ping_path, pong_path]
    if args.cpus:
        cmd += ["--cpus", args.cpus]
    if args.pure_spin:
        cmd += ["--pure-spin"]
    _pin(args.cpu_pair[0] if args.cpu_pair else None)
    child = subprocess.Popen(cmd)
    try:
        ping = Bus.listen(ping_path, args.capacity, timeout=15, role="producer")
        pong = Bus.listen(pong_path, args.capacity, timeout=15, role="consumer")
    except BaseException:
        child.kill()
        child.wait()
        raise
    payload = bytes(args.size)
    lat = array.array("q", bytes(8 * args.count))
    send, recv, now = ping.send, pong.recv, time.perf_counter_ns
    try:
        with ping, pong:
            if args.pure_spin:
                pong.set_polling_mode(1)
            for _ in range(args.warmup):
                send(payload, 1, timeout=None)
                recv()
            print(
                f"tachyon bench: {args.count} round trips of {args.size} bytes, capacity {args.capacity}, "
                f"cpus {args.cpus or 'unpinned'}, {'pure spin' if args.pure_spin else 'hybrid wait'}",
                flush=True,
            )
            done = [0]
            stop = threading.Event()

            def progress():
                while not stop.wait(1.0):
                    print(f"  ... {done[0]}/{args.count} round trips", file=sys.stderr, flush=True)

            reporter = threading.Thread(target=progress, daemon=True)
            reporter.start()
            start = now()
            chunk = 4096
            i = 0
            while i < args.count:
                end = min(args.count, i + chunk)
                for j in range(i, end):
                    t0 = now()
                    send(payload, 1, timeout=None)
                    recv()
                    lat[j] = now() - t0
                i = end
                done[0] = i
            total = now() - start
            stop.set()
            reporter.join()
    finally:
        rc = child.wait(timeout=15)
    s = sorted(lat)
    cols = [("min", s[0])] + [(name, _percentile(s, q)) for name, q in PERCENTILES] + [("max", s[-1])]
    print("round trip (us): " + "  ".join(f"{name} {v / 1000.0:.2f}" for name, v in cols))
    print(f"throughput: {args.count / (total / 1e9):,.0f} round trips/s ({total / 1e9:.2f} s)")
    if rc != 0:
        print(f"echo process exited {rc}", file=sys.stderr)
        return 1
    return 0
