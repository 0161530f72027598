"""The bus across hosts (tcp:// addresses) against raw pyzmq, over loopback TCP.

    python3 benchmarks/python/net.py [--quick] [--sizes 65536,1048576] [--bridge 65536,1048576]
                                     [--round-trip-ms MS] [--json PATH]

One run of each measurement, each in a fresh pair of processes (the one-way
throughput: a child receives and times, a grandchild sends, so that no
measurement inherits another's process state, such as the malloc settings
a tcp bus makes; the round trip and the bridge path: this one receives and
times, a child sends):

* round trip, 32 B: two tcp buses, one each way, against a raw pyzmq
  DEALER/ROUTER pair;
* one-way throughput, 64 B .. 4 MiB: a tcp bus (recv below 64 KiB,
  recv_zero_copy from 64 KiB up) against raw pyzmq DEALER/ROUTER and
  PUSH/PULL of the same sizes (copy below 64 KiB, zero-copy from 64 KiB up,
  as pyzmq advises); at 64 B and 1 KiB also the tcp bus sending with
  send_many, 256 messages a call (received one by one as above).

* the bridge path, 1 KiB .. 1 MiB: a local producer -> ``python -m tachyon
  bridge`` -> tcp -> a second bridge -> a local consumer (four processes),
  against the direct tcp bus of the same size.

Every tcp bus has the capacity that the rule of docs/ACROSS_HOSTS.md
("Capacity") gives for its message size on this loopback (capacity_for).

Printed: messages/s, MB/s, and the ratio ours / raw for each raw pattern.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import _common as common

SIZES = [64, 1024, 16384, 65536, 1 << 20, 4 << 20]
BIG = 1 << 16
BYTES_PER_SIZE = 256 << 20
# From BIG up, runs of a fraction of a second measured the scheduler more than
# either side (200 messages of 4 MiB, 0.2 s a run: 0.64x and 0.96x of raw
# PUSH/PULL in two runs in a row; 600: 0.84x to 1.27x, a median of 0.95x in five).
BIG_BYTES_PER_SIZE = 2 << 30
SYSTEMS = ["tachyon", "dealer_router", "push_pull"]


def free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def count_for(size: int, quick: bool) -> int:
    n = max(200, min(200_000, (BIG_BYTES_PER_SIZE if size >= BIG else BYTES_PER_SIZE) // size))
    return max(100, n // 8) if quick else n


# The link the benchmark runs over: loopback on the 2-vCPU test machine carries
# up to about 5 GB/s, and a 32-byte round trip of the bus takes about 0.15 to
# 0.2 ms (the first line this script prints).
# (--round-trip-ms sets another; 0 sizes by the message size alone.)
LINK_BYTES_PER_S = 5e9
round_trip_s = 0.2e-3


def capacity_for(size: int) -> int:
    """The capacity a user sizes by the rule of docs/ACROSS_HOSTS.md
    ("Capacity"): room for four of the messages, and at least twice what the
    link carries in one round trip; a power of two, from 1 MiB."""
    cap = 1 << 20
    while (cap // 2 - 64 < size or cap < 4 * (size + 64)
           or cap < 2 * LINK_BYTES_PER_S * round_trip_s):
        cap *= 2
    return cap


# -- the sending child ---------------------------------------------------------


def child(system: str, mode: str, size: int, n: int, url: str) -> None:
    payload = b"x" * size
    if system == "tachyon":
        import tachyon

        if mode == "local":  # url is the path of a local bus (the bridge's)
            with tachyon.Bus.connect(url, timeout=30) as bus:
                for _ in range(n):
                    bus.send(payload, timeout=None)
            return
        if mode == "rtt":
            ping_url, pong_url = url.split(",")
            with tachyon.Bus.connect(ping_url, timeout=20) as ping, \
                    tachyon.Bus.connect(pong_url, timeout=20) as pong:
                for msg in ping:
                    pong.send(msg.data, timeout=None)
            return
        with tachyon.Bus.connect(url, timeout=20) as bus:
            if mode == "many":
                batch = [payload] * 256
                for _ in range(n // 256):
                    bus.send_many(batch, timeout=None)
                bus.send_many(batch[:n % 256], timeout=None)
                return
            for _ in range(n):
                bus.send(payload, timeout=None)
        return
    import zmq

    ctx = zmq.Context()
    if mode == "rtt":
        # the echo end binds a ROUTER; the timing end's DEALER speaks first
        s = ctx.socket(zmq.ROUTER)
        s.bind(url)
        while True:
            ident, msg = s.recv_multipart()
            if not msg:
                break
            s.send_multipart([ident, msg])
    else:
        s = ctx.socket(zmq.PUSH if system == "push_pull" else zmq.DEALER)
        s.connect(url)
        s.send(b"go")
        for _ in range(n):
            s.send(payload, copy=size < BIG)
        s.send(b"")
    s.close(linger=-1)
    ctx.term()


def spawn(system: str, mode: str, size: int, n: int, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--child", system, mode, str(size), str(n), url])


# -- the timing parent ---------------------------------------------------------


def one_way(system: str, size: int, n: int, mode: str = "stream") -> float:
    """Seconds from the first message received to the last, received in a
    fresh process."""
    out = subprocess.run([sys.executable, __file__, "--receive", system, mode, str(size), str(n),
                          "--round-trip-ms", str(round_trip_s * 1e3)],
                         check=True, stdout=subprocess.PIPE, text=True, timeout=300).stdout
    return float(out)


def receive(system: str, size: int, n: int, mode: str) -> float:
    """one_way's receiving end, in this process."""
    url = free_url()
    proc = spawn(system, mode, size, n, url)
    try:
        if system == "tachyon":
            import tachyon

            with tachyon.Bus.listen(url, capacity_for(size), timeout=30) as bus:
                first = bus.recv(timeout=30)
                assert first.size == size
                t0 = time.perf_counter()
                got = 1
                if size < BIG:
                    for msg in bus:
                        got += 1
                else:
                    try:
                        while True:
                            with bus.recv_zero_copy(timeout=30) as rx:
                                got += len(rx) > 0
                    except tachyon.PeerClosedError:
                        pass
                t1 = time.perf_counter()
            assert got == n, (got, n)
            return (t1 - t0) * n / max(1, n - 1)
        import zmq

        ctx = zmq.Context()
        s = ctx.socket(zmq.PULL if system == "push_pull" else zmq.ROUTER)
        s.bind(url)
        router = system == "dealer_router"

        def take() -> int:
            if router:
                return len(s.recv_multipart(copy=size < BIG)[1])
            return len(s.recv(copy=size < BIG))

        assert take() == 2  # "go"
        got = 0
        t0 = time.perf_counter()
        while take():
            got += 1
        t1 = time.perf_counter()
        s.close(0)
        ctx.term()
        assert got == n, (got, n)
        return t1 - t0
    finally:
        proc.wait(timeout=60)


def bridged(size: int, n: int) -> float:
    """Seconds from the first message to the last through two bridges: a
    local producer -> bridge -> tcp -> bridge -> a local consumer (here)."""
    import tachyon

    cap = str(capacity_for(size))
    url = free_url()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "src.sock"), os.path.join(tmp, "dst.sock")
        bridge = [sys.executable, "-m", "tachyon", "bridge", "--capacity", cap]
        far = subprocess.Popen(bridge + ["--from-listen", url, "--to-listen", dst])
        near = subprocess.Popen(bridge + ["--from-listen", src, "--to-connect", url])
        proc = spawn("tachyon", "local", size, n, src)
        try:
            with tachyon.Bus.connect(dst, timeout=30) as bus:
                first = bus.recv(timeout=30)
                assert first.size == size
                t0 = time.perf_counter()
                got = 1
                try:
                    while True:
                        with bus.recv_zero_copy(timeout=30) as rx:
                            got += rx.actual_size > 0
                except tachyon.PeerClosedError:
                    pass
                t1 = time.perf_counter()
            assert got == n, (got, n)
            return (t1 - t0) * n / max(1, n - 1)
        finally:
            for p in (proc, near, far):
                p.wait(timeout=60)


def round_trip(system: str, n: int) -> float:
    """Median seconds of a 32-byte round trip."""
    payload = b"p" * 32
    samples = []
    if system == "tachyon":
        import tachyon

        ping_url, pong_url = free_url(), free_url()
        proc = spawn(system, "rtt", 32, n, f"{ping_url},{pong_url}")
        try:
            with tachyon.Bus.listen(ping_url, 1 << 16, timeout=30) as ping, \
                    tachyon.Bus.listen(pong_url, 1 << 16, timeout=30) as pong:
                for i in range(n + 100):
                    t0 = time.perf_counter()
                    ping.send(payload, timeout=None)
                    pong.recv(timeout=30)
                    if i >= 100:
                        samples.append(time.perf_counter() - t0)
        finally:
            proc.wait(timeout=60)
    else:
        import zmq

        url = free_url()
        proc = spawn(system, "rtt", 32, n, url)
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.connect(url)
        try:
            for i in range(n + 100):
                t0 = time.perf_counter()
                s.send(payload)
                s.recv()
                if i >= 100:
                    samples.append(time.perf_counter() - t0)
            s.send(b"")
        finally:
            proc.wait(timeout=60)
            s.close(0)
            ctx.term()
    samples.sort()
    return samples[len(samples) // 2]


THROUGHPUT_HEAD = (f"{'size':>8} {'tachyon msg/s':>14} {'MB/s':>8} {'DEALER/ROUTER':>14} "
                   f"{'PUSH/PULL':>14} {'vs D/R':>7} {'vs P/P':>7}")


def throughput_row(size: int, quick: bool) -> dict:
    """One-way throughput of one size, ours and raw pyzmq's; printed, and returned."""
    n = count_for(size, quick)
    rate = {}
    for sysname in SYSTEMS:
        common.progress(f"{sysname} {size} B x {n}")
        rate[sysname] = n / one_way(sysname, size, n)
    row = {"size": size, "messages": n, **{f"{k}_msgs_per_s": v for k, v in rate.items()},
           "ratio_dealer_router": rate["tachyon"] / rate["dealer_router"],
           "ratio_push_pull": rate["tachyon"] / rate["push_pull"]}
    print(f"{size:>8} {rate['tachyon']:>14.0f} {rate['tachyon'] * size / 1e6:>8.1f} "
          f"{rate['dealer_router']:>14.0f} {rate['push_pull']:>14.0f} "
          f"{row['ratio_dealer_router']:>6.2f}x {row['ratio_push_pull']:>6.2f}x", flush=True)
    if size <= 1024:
        common.progress(f"tachyon send_many {size} B x {n}")
        many = n / one_way("tachyon", size, n, "many")
        row.update(tachyon_send_many_msgs_per_s=many,
                   ratio_send_many_dealer_router=many / rate["dealer_router"],
                   ratio_send_many_push_pull=many / rate["push_pull"])
        print(f"{'  many':>8} {many:>14.0f} {many * size / 1e6:>8.1f} {'':>14} {'':>14} "
              f"{many / rate['dealer_router']:>6.2f}x {many / rate['push_pull']:>6.2f}x",
              flush=True)
    return row


def main() -> None:
    global round_trip_s
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--child", nargs=5, metavar=("SYSTEM", "MODE", "SIZE", "N", "URL"))
    p.add_argument("--receive", nargs=4, metavar=("SYSTEM", "MODE", "SIZE", "N"))
    p.add_argument("--round-trip-ms", type=float, default=round_trip_s * 1e3,
                   help="the round trip the bus capacity is sized for (default %(default)s; "
                        "0: by the message size alone)")
    p.add_argument("--sizes", help="only the one-way throughput of these message sizes "
                                   "(bytes, comma-separated): no round trip, no bridge path")
    p.add_argument("--bridge", help="only the bridge path of these message sizes (bytes, "
                                    "comma-separated), each against the direct tcp bus")
    a = p.parse_args()
    round_trip_s = a.round_trip_ms / 1e3
    if a.child:
        system, mode, size, n, url = a.child
        child(system, mode, int(size), int(n), url)
        return
    if a.receive:
        system, mode, size, n = a.receive
        print(receive(system, int(size), int(n), mode))
        return
    quick = a.quick
    if a.bridge:
        common.write_json(a, {"bridge": bridge_rows([int(size) for size in a.bridge.split(",")],
                                                    quick)})
        return
    if a.sizes:
        print(THROUGHPUT_HEAD)
        result: dict = {"throughput": [throughput_row(int(size), quick)
                                       for size in a.sizes.split(",")]}
        common.write_json(a, result)
        return
    result = {"round_trip_32B_us": {}, "throughput": []}
    n_rtt = 2000 if quick else 10000
    rtt = {sysname: round_trip(sysname, n_rtt) for sysname in ("tachyon", "dealer_router")}
    result["round_trip_32B_us"] = {k: v * 1e6 for k, v in rtt.items()}
    print(f"round trip 32 B (median of {n_rtt}): tachyon tcp {rtt['tachyon'] * 1e6:.1f} us, "
          f"raw DEALER/ROUTER {rtt['dealer_router'] * 1e6:.1f} us, "
          f"ratio {rtt['tachyon'] / rtt['dealer_router']:.2f}x (lower is better)", flush=True)
    print(THROUGHPUT_HEAD)
    for size in SIZES if not quick else [64, 65536, 4 << 20]:
        result["throughput"].append(throughput_row(size, quick))
    result["bridge"] = bridge_rows([1024, 65536, 1 << 20] if not quick else [65536], quick)
    common.write_json(a, result)


def bridge_rows(sizes: list, quick: bool) -> list:
    """The bridge path of each size against the direct tcp bus; printed, and returned."""
    print(f"{'size':>8} {'bridged msg/s':>14} {'MB/s':>8} {'direct msg/s':>14} {'ratio':>7}")
    rows = []
    for size in sizes:
        n = count_for(size, quick) // 2
        common.progress(f"bridge path {size} B x {n}")
        via = n / bridged(size, n)
        direct = n / one_way("tachyon", size, n)
        rows.append({"size": size, "messages": n, "bridged_msgs_per_s": via,
                     "direct_msgs_per_s": direct, "ratio": via / direct})
        print(f"{size:>8} {via:>14.0f} {via * size / 1e6:>8.1f} {direct:>14.0f} "
              f"{via / direct:>6.2f}x", flush=True)
    return rows


if __name__ == "__main__":
    main()
