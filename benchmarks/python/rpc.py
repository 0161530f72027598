"""Request/reply round trip from Python between two processes: RpcBus (call +
wait, and request) beside the plain-bus round trip (two buses, send + recv),
pyzmq REQ/REP over ipc:// and a multiprocessing.Pipe, in one run, alternating
in rounds inside the same two processes.

    python benchmarks/python/rpc.py [--quick] [--rounds N] [--iters N] [--json PATH]

Prints p50/p99 of each and each p50 over RpcBus call+wait's (median of the
per-round ratios). The consumers sleep when idle (the default hybrid mode),
as an application's would. Needs pyzmq (the bench extra).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import tachyon  # noqa: E402

PAYLOAD = b"x" * 32
CAP = 1 << 16
SYSTEMS = ("rpc_call_wait", "rpc_request", "bus_pair", "zmq_req_rep", "mp_pipe")
LABELS = {
    "rpc_call_wait": "tachyon RpcBus call + wait",
    "rpc_request": "tachyon RpcBus request",
    "bus_pair": "tachyon two buses, send + recv",
    "zmq_req_rep": "pyzmq REQ/REP over ipc://",
    "mp_pipe": "multiprocessing.Pipe",
}


# --------------------------------------------------------------------------
# the echo side (child process)


def echo(kind: str, arg, count: int) -> None:
    if kind in ("rpc_call_wait", "rpc_request"):
        with tachyon.RpcBus.rpc_listen(arg, CAP, CAP, timeout=30) as bus:
            for _ in range(count):
                with bus.serve() as rx:
                    cid, mt, data = rx.correlation_id, rx.type_id, bytes(rx)
                bus.reply(cid, data, mt)
    elif kind == "bus_pair":
        req = tachyon.Bus.connect(arg[0], timeout=30, role="consumer")
        rep = tachyon.Bus.connect(arg[1], timeout=30, role="producer")
        for _ in range(count):
            m = req.recv()
            rep.send(m.data, m.type_id, timeout=None)
        req.close()
        rep.close()
    elif kind == "zmq_req_rep":
        import zmq

        ctx = zmq.Context()
        s = ctx.socket(zmq.REP)
        s.connect(arg)
        for _ in range(count):
            s.send(s.recv())
        s.close(linger=0)
        ctx.term()
    else:
        for _ in range(count):
            arg.send_bytes(arg.recv_bytes())
        arg.close()


def child(cpu: int, plan: list) -> None:
    C.pin(cpu)
    for kind, arg, count in plan:
        echo(kind, arg, count)


# --------------------------------------------------------------------------
# the client side (parent process)


def timed(step, iters: int, warm: int) -> list:
    out = []
    for i in range(warm + iters):
        t0 = C.now_ns()
        step()
        if i >= warm:
            out.append(C.now_ns() - t0)
    return out


def client(kind: str, arg, iters: int, warm: int) -> list:
    if kind in ("rpc_call_wait", "rpc_request"):
        with tachyon.RpcBus.rpc_connect(arg, timeout=30) as bus:
            if kind == "rpc_request":
                return timed(lambda: bus.request(PAYLOAD, 1), iters, warm)

            def call_wait() -> None:
                with bus.wait(bus.call(PAYLOAD, 1)) as rx:
                    bytes(rx)

            return timed(call_wait, iters, warm)
    if kind == "bus_pair":
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "rep", tachyon.Bus.listen(arg[1], CAP, timeout=30, role="consumer")))
        t.start()
        req = tachyon.Bus.listen(arg[0], CAP, timeout=30, role="producer")
        t.join()
        rep = box["rep"]

        def send_recv() -> None:
            req.send(PAYLOAD, 1, timeout=None)
            rep.recv()

        try:
            return timed(send_recv, iters, warm)
        finally:
            req.close()
            rep.close()
    if kind == "zmq_req_rep":
        import zmq

        ctx = zmq.Context()
        s = ctx.socket(zmq.REQ)
        s.bind(arg)

        def zmq_rt() -> None:
            s.send(PAYLOAD)
            s.recv()

        try:
            return timed(zmq_rt, iters, warm)
        finally:
            s.close(linger=0)
            ctx.term()

    def pipe_rt() -> None:
        arg.send_bytes(PAYLOAD)
        arg.recv_bytes()

    return timed(pipe_rt, iters, warm)


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=None, help="round trips per round and system")
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 8)
    iters = args.iters or (2000 if args.quick else 10000)
    warm = 200
    cpu_parent, cpu_child = C.cpu_pair(args)
    C.pin(cpu_parent)

    base = f"/tmp/tachyon-rpcbench-{os.getpid()}"
    plan, mine = [], []
    for r in range(rounds):
        # a rotating order, so that no system always runs first in a round
        order = SYSTEMS[r % len(SYSTEMS):] + SYSTEMS[:r % len(SYSTEMS)]
        for kind in order:
            if kind in ("rpc_call_wait", "rpc_request"):
                theirs = ours = f"{base}-{r}-{kind}.sock"
            elif kind == "bus_pair":
                theirs = ours = (f"{base}-{r}-req.sock", f"{base}-{r}-rep.sock")
            elif kind == "zmq_req_rep":
                theirs = ours = f"ipc://{base}-{r}.zmq"
            else:
                ours, theirs = mp.Pipe()
            plan.append((kind, theirs, warm + iters))
            mine.append((kind, ours))
    proc = mp.get_context("spawn").Process(target=child, args=(cpu_child, plan))
    proc.start()
    for _, theirs, _ in plan:  # the child has its own copies now
        if isinstance(theirs, mp.connection.Connection):
            theirs.close()

    samples = {k: [] for k in SYSTEMS}
    p50s = {k: [] for k in SYSTEMS}
    try:
        for i, (kind, ours) in enumerate(mine):
            C.progress(f"round {i // len(SYSTEMS) + 1}/{rounds}: {LABELS[kind]}")
            s = client(kind, ours, iters, warm)
            samples[kind] += s
            p50s[kind].append(C.median(s))
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
        # the ipc:// endpoints pyzmq bound: files that outlive their sockets
        for path in Path(base).parent.glob(Path(base).name + "-*.zmq"):
            path.unlink(missing_ok=True)

    import zmq

    result = {"rounds": rounds, "iters": iters, "zmq": zmq.__version__, "systems": {}}
    print(f"request/reply round trip, 32-byte payload, {rounds} rounds x {iters}, "
          f"hybrid (sleeping) consumers:")
    for kind in SYSTEMS:
        s = C.summary(samples[kind])
        ratio = C.paired(p50s[kind], p50s["rpc_call_wait"])
        result["systems"][kind] = {"label": LABELS[kind], **s, "vs_rpc_call_wait": ratio}
        print(f"  {LABELS[kind]:<34} p50 {C.fmt_ns(s['p50']):>9}  p99 {C.fmt_ns(s['p99']):>9}  "
              f"{ratio['ratio_median']:5.2f}x call+wait")
    C.write_json(args, result)


if __name__ == "__main__":
    main()
