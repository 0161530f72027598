"""asyncio round trip between two processes: tachyon (two buses, recv_async and
send_async at both ends) against pyzmq's zmq.asyncio REQ/REP over ipc://, in
one run, alternating in rounds inside the same two processes.

    python benchmarks/python/asyncio_rtt.py [--quick] [--json PATH]

Prints p50/p99 of each and the p50 ratio (median of per-round ratios). Needs
pyzmq (the bench extra).
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import tachyon  # noqa: E402

PAYLOAD = b"x" * 32


def pin(cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


# --------------------------------------------------------------------------
# the echo side (child process)


async def tachyon_echo(req_path: str, rep_path: str, count: int) -> None:
    req = tachyon.Bus.connect(req_path, timeout=20, role="consumer")
    rep = tachyon.Bus.connect(rep_path, timeout=20, role="producer")
    for _ in range(count):
        m = await req.recv_async()
        await rep.send_async(m.data, m.type_id)
    req.close()
    rep.close()


async def zmq_echo(addr: str, count: int) -> None:
    import zmq
    import zmq.asyncio

    ctx = zmq.asyncio.Context()
    s = ctx.socket(zmq.REP)
    s.connect(addr)
    for _ in range(count):
        await s.send(await s.recv())
    s.close(linger=0)
    ctx.term()


def child(cpu: int, plan: list) -> None:
    pin(cpu)
    for kind, args in plan:
        if kind == "tachyon":
            asyncio.run(tachyon_echo(*args))
        else:
            asyncio.run(zmq_echo(*args))


# --------------------------------------------------------------------------
# the client side (parent process)


async def tachyon_client(req: tachyon.Bus, rep: tachyon.Bus, iters: int, warm: int) -> list:
    out = []
    for i in range(warm + iters):
        t0 = C.now_ns()
        await req.send_async(PAYLOAD)
        await rep.recv_async()
        if i >= warm:
            out.append(C.now_ns() - t0)
    return out


async def zmq_client(sock, iters: int, warm: int) -> list:
    out = []
    for i in range(warm + iters):
        t0 = C.now_ns()
        await sock.send(PAYLOAD)
        await sock.recv()
        if i >= warm:
            out.append(C.now_ns() - t0)
    return out


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=None, help="round trips per round")
    args = p.parse_args()
    rounds = args.rounds or (4 if args.quick else 10)
    iters = args.iters or (1000 if args.quick else 5000)
    warm = 200
    cpu_parent, cpu_child = C.cpu_pair(args)
    pin(cpu_parent)

    base = f"/tmp/tachyon-aiortt-{os.getpid()}"
    plan = []
    for r in range(rounds):
        plan.append(("tachyon", (f"{base}-{r}-req.sock", f"{base}-{r}-rep.sock", warm + iters)))
        plan.append(("zmq", (f"ipc://{base}-{r}.zmq", warm + iters)))
    proc = mp.get_context("spawn").Process(target=child, args=(cpu_child, plan))
    proc.start()

    import zmq
    import zmq.asyncio

    ours_all, zmq_all, ours_p50, zmq_p50 = [], [], [], []
    try:
        for r in range(rounds):
            C.progress(f"round {r + 1}/{rounds}: tachyon")
            _, (req_path, rep_path, _) = plan[2 * r]
            box = {}
            import threading

            t = threading.Thread(target=lambda: box.setdefault(
                "rep", tachyon.Bus.listen(rep_path, 1 << 16, timeout=30, role="consumer")))
            t.start()
            req = tachyon.Bus.listen(req_path, 1 << 16, timeout=30, role="producer")
            t.join()
            rep = box["rep"]
            s = asyncio.run(tachyon_client(req, rep, iters, warm))
            req.close()
            rep.close()
            ours_all += s
            ours_p50.append(C.median(s))

            C.progress(f"round {r + 1}/{rounds}: zmq.asyncio")
            addr = plan[2 * r + 1][1][0]

            async def zrun() -> list:
                ctx = zmq.asyncio.Context()
                sock = ctx.socket(zmq.REQ)
                sock.bind(addr)
                try:
                    return await zmq_client(sock, iters, warm)
                finally:
                    sock.close(linger=0)
                    ctx.term()

            z = asyncio.run(zrun())
            zmq_all += z
            zmq_p50.append(C.median(z))
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
        # the ipc:// endpoints pyzmq bound: files that outlive their sockets
        for path in Path(base).parent.glob(Path(base).name + "-*.zmq"):
            path.unlink(missing_ok=True)

    ours, theirs = C.summary(ours_all), C.summary(zmq_all)
    ratio = C.paired(zmq_p50, ours_p50)
    print(f"asyncio round trip, 32-byte payload, {rounds} rounds x {iters}:")
    print(f"  tachyon (recv_async/send_async, two buses): p50 {C.fmt_ns(ours['p50'])}  "
          f"p99 {C.fmt_ns(ours['p99'])}")
    print(f"  pyzmq zmq.asyncio REQ/REP over ipc://:      p50 {C.fmt_ns(theirs['p50'])}  "
          f"p99 {C.fmt_ns(theirs['p99'])}")
    print(f"  zmq.asyncio / tachyon, p50: {ratio['ratio_median']:.1f}x "
          f"(per-round ratios {ratio['ratio_min']:.1f}x .. {ratio['ratio_max']:.1f}x)")
    C.write_json(args, {"tachyon": ours, "zmq_asyncio": theirs, "ratio_p50": ratio,
                        "rounds": rounds, "iters": iters, "zmq": zmq.__version__})


if __name__ == "__main__":
    main()
