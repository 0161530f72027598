"""Round-trip latency from Python: tachyon against its floors and its peers.

    python3 benchmarks/python/rtt.py [--set floors|peers|blocking] [--rounds N]
                                     [--iters N] [--size 32] [--cpus 0,1]
                                     [--json PATH]

Two processes (this one pinned to the first CPU, a spawned echo process to
the second) bounce a --size byte message. Every system of the set runs in
every round, in a rotating order, so the floors and the candidates share the
same vCPU placement; a ratio is the median over the rounds of the per-round
p50 ratios (and a difference the median of the per-round p50 differences).

Sets:
  floors    c2c (bare cache line, C), pyshm (the interpreter's floor: both
            processes spin on a byte of a shared mmap), tachyon via send +
            next(iter(bus)), via the zero-copy guards, via drain_batch;
            consumers in pure-spin mode.
  peers     tachyon (send + next(iter(bus)), pure spin) against
            multiprocessing.Pipe, multiprocessing.Queue, pyzmq (ipc://),
            faster-fifo, iceoryx2, posix_ipc message queues.
  blocking  raw futex ping-pong (C, both sides sleep every time) against
            tachyon with sleeping consumers (drain_batch(spin_threshold=1)).

Every sample is one round trip timed with time.perf_counter_ns (vDSO); the
clock's own cost is in every system alike.
"""
from __future__ import annotations

import array
import ctypes
import importlib
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

WARMUP = 200  # untimed round trips at the start of every round


# --------------------------------------------------------------------------
# systems: each has an open(side, spec) step and ping / pong loops


class System:
    name = ""
    label = ""
    kind = "ours"  # floor | ours | peer
    slow = False  # a slow system gets fewer iterations per round
    module = None  # a module that must import, else the system is skipped

    def spec(self) -> dict:
        """Picklable set-up data made by the parent before the child exists."""
        return {}

    def open(self, side: str, spec: dict, size: int) -> None:
        raise NotImplementedError

    def ping(self, lat, n: int) -> None:
        raise NotImplementedError

    def pong(self, n: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class C2C(System):
    name, label, kind = "c2c", "C cache-line floor", "floor"

    def spec(self):
        self.page = C.SharedPage()
        return {"page": self.page.name}

    def open(self, side, spec, size):
        if side == "pong":
            self.page = C.SharedPage(spec["page"], create=False)
        self.lib = C.native()
        self.word = self.page.addr(0)
        self.seq = ctypes.c_uint64(0)

    def ping(self, lat, n):
        if self.lib.c2c_ping(self.word, ctypes.byref(self.seq), C.buffer_addr(lat), n) != 0:
            raise TimeoutError("c2c: the echo process stopped answering")

    def pong(self, n):
        if self.lib.c2c_pong(self.word, ctypes.byref(self.seq), n) != 0:
            raise TimeoutError("c2c: the pinger stopped")

    def close(self):
        self.page.close()


class Futex(System):
    name, label, kind, slow = "futex", "raw futex ping-pong (C)", "floor", True

    def spec(self):
        self.page = C.SharedPage()
        return {"page": self.page.name}

    def open(self, side, spec, size):
        if side == "pong":
            self.page = C.SharedPage(spec["page"], create=False)
        self.lib = C.native()
        self.word = self.page.addr(1024)
        self.seq = ctypes.c_uint32(0)

    def ping(self, lat, n):
        if self.lib.futex_ping(self.word, ctypes.byref(self.seq), C.buffer_addr(lat), n) != 0:
            raise TimeoutError("futex: the echo process stopped answering")

    def pong(self, n):
        if self.lib.futex_pong(self.word, ctypes.byref(self.seq), n) != 0:
            raise TimeoutError("futex: the pinger stopped")

    def close(self):
        self.page.close()


class PyShm(System):
    """The interpreter's own floor: both processes spin on a byte of a shared
    mmap. One byte each way, on lines 128 bytes apart, each written by one
    side only (the C floors' layout, benchmarks/c/bench_common.h): the
    pinger writes the next sequence byte and spins until the echo's byte
    equals it."""

    name, label, kind = "pyshm", "pure-Python shm flag floor", "floor"
    PONG = 128

    def spec(self):
        self.page = C.SharedPage()
        return {"page": self.page.name}

    def open(self, side, spec, size):
        if side == "pong":
            self.page = C.SharedPage(spec["page"], create=False)
        self.seq = 0

    def ping(self, lat, n):
        m, k = self.page.map, self.PONG
        now = C.now_ns
        s = self.seq
        for i in range(n):
            s = (s + 1) & 0xFF
            t0 = now()
            m[0] = s
            while m[k] != s:
                pass
            lat[i] = now() - t0
        self.seq = s

    def pong(self, n):
        m, k = self.page.map, self.PONG
        s = self.seq
        for _ in range(n):
            s = (s + 1) & 0xFF
            while m[0] != s:
                pass
            m[k] = s
        self.seq = s

    def close(self):
        self.page.close()


class _TachyonPair(System):
    """Two buses, one per direction: parent -> child ("a"), child -> parent ("b")."""

    module = "tachyon"
    pure_spin = True
    capacity = 1 << 16

    def spec(self):
        return {"a": C.sock_path(self.name + "-a"), "b": C.sock_path(self.name + "-b")}

    def open(self, side, spec, size):
        import tachyon

        self.size = size
        self.payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        if side == "ping":
            self.tx = tachyon.Bus.listen(spec["a"], self.capacity, timeout=30, role="producer")
            self.rx = tachyon.Bus.listen(spec["b"], self.capacity, timeout=30, role="consumer")
        else:
            self.rx = tachyon.Bus.connect(spec["a"], timeout=30, role="consumer")
            self.tx = tachyon.Bus.connect(spec["b"], timeout=30, role="producer")
        self.rx.set_polling_mode(1 if self.pure_spin else 0)

    def close(self):
        self.tx.close()
        self.rx.close()


class TachyonIter(_TachyonPair):
    name, label = "tachyon_iter", "tachyon send + next(iter(bus))"

    def ping(self, lat, n):
        send, it, p, now = self.tx.send, iter(self.rx), self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            send(p)
            next(it)
            lat[i] = now() - t0

    def pong(self, n):
        send, it = self.tx.send, iter(self.rx)
        for _ in range(n):
            send(next(it).data)


class TachyonZeroCopy(_TachyonPair):
    """The quickstart's zero-copy pattern: send_zero_copy + memoryview write +
    actual_size; recv_zero_copy + memoryview read (first byte)."""

    name, label = "tachyon_zc", "tachyon zero-copy guards"

    def ping(self, lat, n):
        szc, rzc, p, size, now = self.tx.send_zero_copy, self.rx.recv_zero_copy, self.payload, self.size, C.now_ns
        for i in range(n):
            t0 = now()
            with szc(size) as g:
                with memoryview(g) as mv:
                    mv[:] = p
                g.actual_size = size
            with rzc() as r:
                with memoryview(r) as mv:
                    mv[0]
            lat[i] = now() - t0

    def pong(self, n):
        szc, rzc = self.tx.send_zero_copy, self.rx.recv_zero_copy
        for _ in range(n):
            with rzc() as r:
                k = r.actual_size
                with szc(k) as g:
                    with memoryview(g) as mv:
                        mv[:] = r
                    g.actual_size = k


class TachyonDrain(_TachyonPair):
    """send + drain_batch; the views are read with len(view)."""

    name, label = "tachyon_drain", "tachyon send + drain_batch"

    def ping(self, lat, n):
        send, drain, p, now = self.tx.send, self.rx.drain_batch, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            send(p)
            with drain() as b:
                for v in b:
                    len(v)
            lat[i] = now() - t0

    def pong(self, n):
        send, drain = self.tx.send, self.rx.drain_batch
        for _ in range(n):
            with drain() as b:
                for v in b:
                    send(v)


class TachyonSleep(_TachyonPair):
    """Both consumers sleep at once (hybrid mode, spin_threshold=1): every
    message is a futex wake-up, as in the raw futex ping-pong."""

    name, label, slow = "tachyon_sleep", "tachyon, sleeping consumers", True
    pure_spin = False

    def ping(self, lat, n):
        send, drain, p, now = self.tx.send, self.rx.drain_batch, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            send(p)
            with drain(1, 1) as b:
                len(b[0])
            lat[i] = now() - t0

    def pong(self, n):
        send, drain = self.tx.send, self.rx.drain_batch
        for _ in range(n):
            with drain(1, 1) as b:
                send(b[0])


class MpPipe(System):
    name, label, kind, slow = "mp_pipe", "multiprocessing.Pipe", "peer", True

    def spec(self):
        a, b = C.spawn_ctx().Pipe()
        self._keep = (a, b)
        return {"conn": b}

    def open(self, side, spec, size):
        self.payload = bytes(size)
        self.conn = self._keep[0] if side == "ping" else spec["conn"]

    def ping(self, lat, n):
        send, recv, p, now = self.conn.send_bytes, self.conn.recv_bytes, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            send(p)
            recv()
            lat[i] = now() - t0

    def pong(self, n):
        send, recv = self.conn.send_bytes, self.conn.recv_bytes
        for _ in range(n):
            send(recv())


class MpQueue(System):
    name, label, kind, slow = "mp_queue", "multiprocessing.Queue", "peer", True

    def spec(self):
        ctx = C.spawn_ctx()
        self._q = (ctx.Queue(), ctx.Queue())
        return {"a": self._q[0], "b": self._q[1]}

    def open(self, side, spec, size):
        self.payload = bytes(size)
        a, b = (self._q if side == "ping" else (spec["a"], spec["b"]))
        self.tx, self.rx = (a, b) if side == "ping" else (b, a)

    def ping(self, lat, n):
        put, get, p, now = self.tx.put, self.rx.get, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            put(p)
            get()
            lat[i] = now() - t0

    def pong(self, n):
        put, get = self.tx.put, self.rx.get
        for _ in range(n):
            put(get())


class Zmq(System):
    name, label, kind, slow, module = "pyzmq_ipc", "pyzmq PAIR ipc://", "peer", True, "zmq"

    def spec(self):
        return {"addr": "ipc://" + C.sock_path("zmq")}

    def open(self, side, spec, size):
        import zmq

        self.payload = bytes(size)
        self.side, self.addr = side, spec["addr"]
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PAIR)
        if side == "ping":
            self.sock.bind(spec["addr"])
        else:
            self.sock.connect(spec["addr"])

    def ping(self, lat, n):
        send, recv, p, now = self.sock.send, self.sock.recv, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            send(p)
            recv()
            lat[i] = now() - t0

    def pong(self, n):
        send, recv = self.sock.send, self.sock.recv
        for _ in range(n):
            send(recv())

    def close(self):
        self.sock.close(linger=0)
        self.ctx.term()
        if self.side == "ping":  # the bound end's socket file stays behind otherwise
            try:
                os.unlink(self.addr[len("ipc://"):])
            except FileNotFoundError:
                pass


def _identity(x):
    return x


class FasterFifo(System):
    """faster-fifo queues with identity dumps/loads (raw bytes, no pickle)."""

    name, label, kind, slow, module = "faster_fifo", "faster-fifo", "peer", True, "faster_fifo"

    def spec(self):
        import faster_fifo

        self._q = tuple(faster_fifo.Queue(1 << 20, dumps=_identity, loads=_identity) for _ in range(2))
        return {"a": self._q[0], "b": self._q[1]}

    def open(self, side, spec, size):
        self.payload = bytes(size)
        a, b = (self._q if side == "ping" else (spec["a"], spec["b"]))
        self.tx, self.rx = (a, b) if side == "ping" else (b, a)

    def ping(self, lat, n):
        put, get, p, now = self.tx.put, self.rx.get, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            put(p)
            get()
            lat[i] = now() - t0

    def pong(self, n):
        put, get = self.tx.put, self.rx.get
        for _ in range(n):
            put(bytes(get()))


class Iceoryx2(System):
    """iceoryx2 publish-subscribe, a fixed 32-byte (size) ctypes payload per
    direction; send_copy, and the receiver polls receive() (it never sleeps)."""

    name, label, kind, slow, module = "iceoryx2", "iceoryx2 pub/sub (polling)", "peer", True, "iceoryx2"

    def spec(self):
        return {"svc": f"tbench/{os.getpid()}"}

    def open(self, side, spec, size):
        import iceoryx2 as iox2

        iox2.set_log_level_from_env_or(iox2.LogLevel.Warn)

        class Payload(ctypes.Structure):
            _fields_ = [("data", ctypes.c_uint8 * size)]

        self.payload = Payload()
        self.node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)

        def svc(d):
            return self.node.service_builder(iox2.ServiceName.new(f"{spec['svc']}/{d}")).publish_subscribe(
                Payload).open_or_create()

        self.svc_a, self.svc_b = svc("a"), svc("b")
        out, inp = (self.svc_a, self.svc_b) if side == "ping" else (self.svc_b, self.svc_a)
        self.pub = out.publisher_builder().create()
        self.sub = inp.subscriber_builder().create()

    def ping(self, lat, n):
        send, recv, p, now = self.pub.send_copy, self.sub.receive, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            send(p)
            s = recv()
            while s is None:
                s = recv()
            del s
            lat[i] = now() - t0

    def pong(self, n):
        send, recv, p = self.pub.send_copy, self.sub.receive, self.payload
        for _ in range(n):
            s = recv()
            while s is None:
                s = recv()
            ctypes.memmove(ctypes.byref(p), s.payload(), ctypes.sizeof(p))
            del s
            send(p)

    def close(self):
        del self.pub, self.sub, self.svc_a, self.svc_b, self.node


class PosixMQ(System):
    name, label, kind, slow, module = "posix_ipc", "posix_ipc message queue", "peer", True, "posix_ipc"

    def spec(self):
        import posix_ipc

        names = (f"/tbench-{os.getpid()}-a", f"/tbench-{os.getpid()}-b")
        self._mq = tuple(posix_ipc.MessageQueue(nm, posix_ipc.O_CREX, max_messages=8, max_message_size=4096)
                         for nm in names)
        return {"a": names[0], "b": names[1]}

    def open(self, side, spec, size):
        import posix_ipc

        self.payload = bytes(size)
        a, b = self._mq if side == "ping" else (posix_ipc.MessageQueue(spec["a"]), posix_ipc.MessageQueue(spec["b"]))
        self.tx, self.rx = (a, b) if side == "ping" else (b, a)
        self.side = side

    def ping(self, lat, n):
        send, recv, p, now = self.tx.send, self.rx.receive, self.payload, C.now_ns
        for i in range(n):
            t0 = now()
            send(p)
            recv()
            lat[i] = now() - t0

    def pong(self, n):
        send, recv = self.tx.send, self.rx.receive
        for _ in range(n):
            send(recv()[0])

    def close(self):
        for q in (self.tx, self.rx):
            q.close()
            if self.side == "ping":
                q.unlink()


SETS = {
    "floors": [C2C, PyShm, TachyonIter, TachyonZeroCopy, TachyonDrain],
    "peers": [TachyonIter, MpPipe, MpQueue, Zmq, FasterFifo, Iceoryx2, PosixMQ],
    "blocking": [Futex, TachyonSleep],
}
ALL = {cls.name: cls for group in SETS.values() for cls in group}


def available(cls) -> str | None:
    """None when usable, else why not."""
    if cls.module:
        try:
            importlib.import_module(cls.module)
        except Exception as e:  # ImportError and friends
            return f"import {cls.module} failed: {type(e).__name__}: {e}"
    return None


# --------------------------------------------------------------------------
# the two processes


def _child(names, specs, size, cpu, ctrl):
    C.pin(cpu)
    systems = {}
    try:
        for nm in names:
            s = ALL[nm]()
            s.open("pong", specs[nm], size)
            systems[nm] = s
        ctrl.send(("ready", None))
        while True:
            cmd = ctrl.recv()
            if cmd[0] == "stop":
                break
            systems[cmd[1]].pong(cmd[2])
    except BaseException:
        try:
            ctrl.send(("error", traceback.format_exc()))
        except Exception:
            pass
        raise
    finally:
        for s in systems.values():
            try:
                s.close()
            except Exception:
                pass


class _Alarm(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Alarm()


def run(set_name, rounds, iters, slow_iters, size, cpus, skip=()):
    cpu_parent, cpu_child = cpus
    C.pin(cpu_parent)
    chosen, skipped = [], {}
    for cls in SETS[set_name]:
        if cls.name in skip:
            skipped[cls.name] = "skipped on request"
            continue
        why = available(cls)
        if why:
            skipped[cls.name] = why
        else:
            chosen.append(cls())
    if any(isinstance(s, (C2C, Futex)) for s in chosen):
        C.native()  # build before the child needs it
    specs = {s.name: s.spec() for s in chosen}
    ctx = C.spawn_ctx()
    ctrl, ctrl_child = ctx.Pipe()
    child = ctx.Process(target=_child, args=([s.name for s in chosen], specs, size, cpu_child, ctrl_child),
                        daemon=True)
    child.start()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    result = {"benchmark": "rtt", "set": set_name, "size": size, "cpus": list(cpus), "rounds": rounds,
              "iters": iters, "slow_iters": slow_iters, "warmup": WARMUP, "skipped": skipped, "systems": {},
              "cdf_p": C.CDF_P}
    try:
        signal.alarm(60)
        for s in chosen:
            s.open("ping", specs[s.name], size)
        msg = ctrl.recv()
        if msg[0] != "ready":
            raise RuntimeError("echo process failed:\n" + msg[1])
        signal.alarm(0)
        per_round = {s.name: [] for s in chosen}
        samples = {s.name: [] for s in chosen}
        t_start = time.monotonic()
        for r in range(rounds):
            order = chosen[r % len(chosen):] + chosen[:r % len(chosen)]
            for s in order:
                n = slow_iters if s.slow else iters
                lat = array.array("q", bytes(8 * (n + WARMUP)))
                signal.alarm(max(30, int(n * 1e-3) + 30))
                ctrl.send(("round", s.name, n + WARMUP))
                try:
                    s.ping(lat, n + WARMUP)
                except _Alarm:
                    raise TimeoutError(f"{s.name}: no answer within the round's time limit") from None
                signal.alarm(0)
                timed = lat[WARMUP:]
                per_round[s.name].append(C.percentile(sorted(timed), 50))
                samples[s.name].extend(timed)
            C.progress(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{s.name} {per_round[s.name][-1]:.0f}" for s in chosen) + f" ns p50 ({time.monotonic() - t_start:.0f} s)")
        ctrl.send(("stop",))
        child.join(30)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        if child.is_alive():
            child.kill()
            child.join()
        for s in chosen:
            try:
                s.close()
            except Exception:
                pass
    for s in chosen:
        d = C.summary(samples[s.name])
        d.update(label=s.label, kind=s.kind, round_p50=per_round[s.name], cdf_ns=C.cdf(samples[s.name]))
        result["systems"][s.name] = d
    return result


def add_pairs(result):
    sy = result["systems"]
    pairs = {}

    def pair(num, den):
        if num in sy and den in sy:
            p = C.paired(sy[num]["round_p50"], sy[den]["round_p50"])
            if "c2c" in sy:
                c2c = sy["c2c"]["round_p50"]
                p["by_placement"] = {"ratio": C.by_placement(c2c, p["ratios"]),
                                     "diff": C.by_placement(c2c, p["diffs"])}
            pairs[f"{num}/{den}"] = p

    if result["set"] == "floors":
        for t in ("tachyon_iter", "tachyon_zc", "tachyon_drain"):
            pair(t, "pyshm")
            pair(t, "c2c")
        pair("pyshm", "c2c")
    elif result["set"] == "peers":
        for p in ("mp_pipe", "mp_queue", "pyzmq_ipc", "faster_fifo", "iceoryx2", "posix_ipc"):
            pair(p, "tachyon_iter")
    elif result["set"] == "blocking":
        pair("tachyon_sleep", "futex")
    result["pairs"] = pairs
    return result


def print_result(result):
    print(f"round trip, {result['size']}-byte payload, set '{result['set']}', {result['rounds']} rounds x "
          f"{result['iters']} (slow systems {result['slow_iters']}) round trips, cpus {result['cpus']}")
    print(f"{'system':34s} {'p50':>9s} {'p90':>9s} {'p99':>9s} {'p99.9':>9s} {'min':>9s}   round p50 min..max")
    for name, d in result["systems"].items():
        rp = d["round_p50"]
        print(f"{d['label']:34s} {C.fmt_ns(d['p50']):>9s} {C.fmt_ns(d['p90']):>9s} {C.fmt_ns(d['p99']):>9s} "
              f"{C.fmt_ns(d['p99.9']):>9s} {C.fmt_ns(d['min']):>9s}   {C.fmt_ns(min(rp))}..{C.fmt_ns(max(rp))}")
    for name, why in result["skipped"].items():
        print(f"{name:34s} not run: {why}")
    for key, p in result["pairs"].items():
        print(f"paired p50 {key}: ratio median {p['ratio_median']:.3f} (min {p['ratio_min']:.3f}, max "
              f"{p['ratio_max']:.3f}), difference median {p['diff_median']:.0f} ns, {p['rounds']} rounds")
        bp = p.get("by_placement")
        if bp:
            for pl, d in bp["ratio"].items():
                print(f"    {pl} placement (C line p50 {'<' if pl == 'fast' else '>='} {C.PLACEMENT_SPLIT_NS} ns), "
                      f"{d['rounds']} rounds: ratio {d['median']:.3f}, difference {bp['diff'][pl]['median']:.0f} ns")


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=sorted(SETS), default="floors")
    p.add_argument("--iters", type=int, default=None, help="timed round trips per round (fast systems)")
    p.add_argument("--slow-iters", type=int, default=None, help="timed round trips per round (slow systems)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--skip", default="", help="comma-separated systems to leave out")
    args = p.parse_args(argv)
    rounds = args.rounds or (10 if args.quick else 20)
    iters = args.iters or (2000 if args.quick else 5000)
    slow_iters = args.slow_iters or (200 if args.quick else 500)
    if args.set == "blocking" and args.slow_iters is None:
        slow_iters = 300 if args.quick else 1000
    result = run(args.set, rounds, iters, slow_iters, args.size, C.cpu_pair(args),
                 skip=[x for x in args.skip.split(",") if x])
    add_pairs(result)
    print_result(result)
    C.write_json(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
