"""One-way message rate and throughput, counted at the consumer.

    python3 benchmarks/python/stream.py [--systems tachyon,tachyon_c,...]
                                        [--sizes 64,4096,1048576] [--rounds N]
                                        [--window 0.4] [--cpus 0,1] [--json PATH]

The consumer is this process (first CPU); the producer a spawned process (or
the C program c_producer.c) on the second CPU, sending as fast as the
channel takes it. After a short warm-up the consumer counts messages over
--rounds windows of --window seconds; the rate is the median window.

tachyon       producer send_many(batch of 256 x size, timeout=None) from
              Python; consumer drain_batch(), iterating the views and reading
              len(view); capacity 8 MiB; consumer in pure-spin mode
tachyon_c     the same consumer, producer in C (reserve + memcpy + commit,
              flush every 256: benchmarks/python/c_producer.c)
mp_pipe       Connection.send_bytes / recv_bytes
mp_queue      multiprocessing.Queue(maxsize=1024) put / get
pyzmq_ipc     PUSH/PULL over ipc://, send / recv
faster_fifo   put_many(256, fewer when 256 messages exceed 2 MiB) / get_many,
              an 8 MiB buffer, identity dumps/loads (raw bytes, no pickle)
posix_ipc     MessageQueue send / receive (sizes up to the 8 KiB msgsize_max)
iceoryx2      publish-subscribe, send_copy of a fixed-size payload; the
              consumer polls receive() (iceoryx2 may drop samples when the
              subscriber's buffer is full: only received samples count)
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

BATCH = 256
CAPACITY = 8 << 20
SYSTEMS = ["tachyon", "tachyon_c", "mp_pipe", "mp_queue", "pyzmq_ipc", "faster_fifo", "posix_ipc", "iceoryx2"]
MODULES = {"pyzmq_ipc": "zmq", "faster_fifo": "faster_fifo", "posix_ipc": "posix_ipc", "iceoryx2": "iceoryx2"}
POSIX_MQ_MAX = 8192


def _identity(x):
    return x


def _iox_payload(size):
    class Payload(ctypes.Structure):
        _fields_ = [("data", ctypes.c_uint8 * size)]

    return Payload


# --------------------------------------------------------------------------
# producers (child process)


def _producer(system, size, spec, cpu, ready):
    C.pin(cpu)
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    try:
        if system == "tachyon":
            import tachyon

            bus = tachyon.Bus.connect(spec["path"], timeout=30, role="producer")
            ready.send("ok")
            batch = [payload] * BATCH
            send_many = bus.send_many
            try:
                while True:
                    send_many(batch, timeout=None)
            except (tachyon.PeerClosedError, tachyon.PeerDeadError, tachyon.BusClosedError):
                pass
            bus.close()
        elif system == "mp_pipe":
            conn = spec["conn"]
            ready.send("ok")
            send = conn.send_bytes
            while True:
                send(payload)
        elif system == "mp_queue":
            q = spec["q"]
            ready.send("ok")
            put = q.put
            while True:
                put(payload)
        elif system == "pyzmq_ipc":
            import zmq

            ctx = zmq.Context()
            s = ctx.socket(zmq.PUSH)
            s.connect(spec["addr"])
            ready.send("ok")
            send = s.send
            while True:
                send(payload)
        elif system == "faster_fifo":
            q = spec["q"]
            ready.send("ok")
            batch = [payload] * spec["batch"]
            while True:
                q.put_many(batch, timeout=1e9)
        elif system == "posix_ipc":
            import posix_ipc

            mq = posix_ipc.MessageQueue(spec["name"])
            ready.send("ok")
            send = mq.send
            while True:
                send(payload)
        elif system == "iceoryx2":
            import iceoryx2 as iox2

            iox2.set_log_level_from_env_or(iox2.LogLevel.Warn)
            P = _iox_payload(size)
            node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
            svc = node.service_builder(iox2.ServiceName.new(spec["svc"])).publish_subscribe(P).open_or_create()
            pub = svc.publisher_builder().create()
            p = P()
            ready.send("ok")
            send = pub.send_copy
            while True:
                send(p)
    except (BrokenPipeError, ConnectionResetError, EOFError, KeyboardInterrupt):
        pass
    except BaseException:
        try:
            ready.send("error: " + traceback.format_exc())
        except Exception:
            pass
        raise


# --------------------------------------------------------------------------
# consumers (this process)


class _Window:
    """Counts messages over `rounds` windows of `window` s after `warmup` s."""

    def __init__(self, warmup, window, rounds):
        self.warmup, self.window, self.rounds = warmup, window, rounds
        self.rates = []

    def run(self, take):
        """take() consumes some messages and returns how many."""
        now = time.perf_counter
        t_end = now() + self.warmup
        while now() < t_end:
            take()
        for _ in range(self.rounds):
            n = 0
            t0 = now()
            t_end = t0 + self.window
            while True:
                n += take()
                t = now()
                if t >= t_end:
                    break
            self.rates.append(n / (t - t0))
        return self.rates


def _consume(system, size, spec, w: _Window, state):
    if system in ("tachyon", "tachyon_c"):
        bus = state["bus"]
        drain = bus.drain_batch

        def take():
            with drain() as b:
                for v in b:
                    len(v)
                return len(b)

        return w.run(take)
    if system == "mp_pipe":
        recv = state["conn"].recv_bytes

        def take():
            for _ in range(64):
                recv()
            return 64

        return w.run(take)
    if system == "mp_queue":
        get = spec["q"].get

        def take():
            for _ in range(64):
                get()
            return 64

        return w.run(take)
    if system == "pyzmq_ipc":
        recv = state["sock"].recv

        def take():
            for _ in range(64):
                recv()
            return 64

        return w.run(take)
    if system == "faster_fifo":
        get_many = spec["q"].get_many

        def take():
            return len(get_many(max_messages_to_get=1024, timeout=1e9))

        return w.run(take)
    if system == "posix_ipc":
        recv = state["mq"].receive

        def take():
            for _ in range(64):
                recv()
            return 64

        return w.run(take)
    if system == "iceoryx2":
        recv = state["sub"].receive

        def take():
            k = 0
            for _ in range(64):
                s = recv()
                if s is not None:
                    k += 1
                    del s
            return k

        return w.run(take)
    raise ValueError(system)


def measure(system, size, cpus, warmup, window, rounds, c_producer=None):
    """Rates (msg/s) of `rounds` windows for one system and size."""
    ctx = C.spawn_ctx()
    spec, state = {}, {}
    cleanup = []
    if system in ("tachyon", "tachyon_c"):
        spec["path"] = C.sock_path(f"stream-{size}")
    elif system == "mp_pipe":
        a, b = ctx.Pipe(duplex=False)
        state["conn"], spec["conn"] = a, b
    elif system == "mp_queue":
        spec["q"] = ctx.Queue(maxsize=1024)
    elif system == "pyzmq_ipc":
        import zmq

        spec["addr"] = "ipc://" + C.sock_path("zmq-stream")
        zc = zmq.Context()
        s = zc.socket(zmq.PULL)
        s.bind(spec["addr"])
        state["sock"] = s
        cleanup.append(lambda: (s.close(linger=0), zc.term(), os.unlink(spec["addr"][len("ipc://"):])))
    elif system == "faster_fifo":
        import faster_fifo

        spec["q"] = faster_fifo.Queue(CAPACITY, dumps=_identity, loads=_identity)
        spec["batch"] = min(BATCH, max(1, CAPACITY // 4 // (size + 64)))
    elif system == "posix_ipc":
        import posix_ipc

        if size > POSIX_MQ_MAX:
            raise ValueError(f"message size {size} > msgsize_max {POSIX_MQ_MAX}")
        spec["name"] = f"/tbench-{os.getpid()}-stream"
        mq = posix_ipc.MessageQueue(spec["name"], posix_ipc.O_CREX, max_messages=10, max_message_size=max(size, 1))
        state["mq"] = mq
        cleanup.append(lambda: (mq.close(), mq.unlink()))
    elif system == "iceoryx2":
        import iceoryx2 as iox2

        iox2.set_log_level_from_env_or(iox2.LogLevel.Warn)
        spec["svc"] = f"tbench/stream/{os.getpid()}/{size}"
        P = _iox_payload(size)
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        svc = node.service_builder(iox2.ServiceName.new(spec["svc"])).publish_subscribe(P).open_or_create()
        state["sub"] = svc.subscriber_builder().create()
        state["_keep"] = (node, svc)

    proc = popen = None
    ready_r, ready_w = ctx.Pipe(duplex=False)
    try:
        if system == "tachyon_c":
            popen = subprocess.Popen([str(c_producer), spec["path"], str(size), "--cpu", str(cpus[1]),
                                      "--batch", str(BATCH)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            proc = ctx.Process(target=_producer, args=(system, size, spec, cpus[1], ready_w), daemon=True)
            proc.start()
        if system in ("tachyon", "tachyon_c"):
            import tachyon

            state["bus"] = tachyon.Bus.listen(spec["path"], CAPACITY, timeout=30, role="consumer")
            state["bus"].set_polling_mode(1)
        if proc is not None:
            if not ready_r.poll(60):
                raise TimeoutError(f"{system}: producer did not start")
            msg = ready_r.recv()
            if msg != "ok":
                raise RuntimeError(msg)
        if system == "iceoryx2":
            time.sleep(0.05)  # let the publisher see the subscriber
        return _consume(system, size, spec, _Window(warmup, window, rounds), state)
    finally:
        if "bus" in state:
            state["bus"].close()
        if popen is not None:
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        if proc is not None:
            proc.join(0.5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for f in cleanup:
            try:
                f()
            except Exception:
                pass


def run(systems, sizes, cpus, rounds, window, warmup=0.15):
    C.pin(cpus[0])
    result = {"benchmark": "stream", "cpus": list(cpus), "rounds": rounds, "window_s": window, "batch": BATCH,
              "capacity": CAPACITY, "systems": {}, "skipped": {}}
    c_producer = None
    if "tachyon_c" in systems:
        try:
            c_producer = C.build_c_producer()
        except Exception as e:
            result["skipped"]["tachyon_c"] = f"c_producer not built: {e}"
            systems = [s for s in systems if s != "tachyon_c"]
    for system in systems:
        mod = MODULES.get(system)
        if mod:
            try:
                __import__(mod)
            except Exception as e:
                result["skipped"][system] = f"import {mod} failed: {e}"
                continue
        if system in ("tachyon", "tachyon_c"):
            try:
                __import__("tachyon")
            except Exception as e:
                result["skipped"][system] = f"import tachyon failed: {e}"
                continue
        rows = {}
        for size in sizes:
            if system == "posix_ipc" and size > POSIX_MQ_MAX:
                rows[str(size)] = {"error": f"over msgsize_max ({POSIX_MQ_MAX} B)"}
                continue
            old = signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(int(warmup + rounds * window) + 60)
            try:
                rates = measure(system, size, cpus, warmup, window, rounds, c_producer)
                r = C.median(rates)
                rows[str(size)] = {"msgs_per_s": r, "bytes_per_s": r * size, "rates": rates}
                C.progress(f"{system} {size} B: {r / 1e6:.2f} M msg/s, {r * size / 1e9:.3f} GB/s")
            except Exception as e:
                rows[str(size)] = {"error": f"{type(e).__name__}: {e}"}
                C.progress(f"{system} {size} B: failed: {e}")
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)
        result["systems"][system] = rows
    return result


def _alarm(signum, frame):
    raise TimeoutError("measurement took too long")


def print_result(result):
    print(f"one-way stream, counted at the consumer, cpus {result['cpus']}, median of {result['rounds']} windows of "
          f"{result['window_s']} s")
    print(f"{'system':12s} {'size':>9s} {'msg/s':>12s} {'MB/s':>10s}   windows (msg/s)")
    for system, rows in result["systems"].items():
        for size, d in rows.items():
            if "error" in d:
                print(f"{system:12s} {size:>9s} {'-':>12s} {'-':>10s}   {d['error']}")
            else:
                print(f"{system:12s} {size:>9s} {d['msgs_per_s']:12,.0f} {d['bytes_per_s'] / 1e6:10,.1f}   "
                      + " ".join(f"{x:.4g}" for x in d["rates"]))
    for system, why in result["skipped"].items():
        print(f"{system:12s} not run: {why}")


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--systems", default="tachyon,tachyon_c")
    p.add_argument("--sizes", default="64")
    p.add_argument("--window", type=float, default=None, help="seconds per counted window")
    args = p.parse_args(argv)
    systems = SYSTEMS if args.systems == "all" else [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s}; known: {', '.join(SYSTEMS)}")
    sizes = [int(x) for x in args.sizes.split(",")]
    rounds = args.rounds or (3 if args.quick else 5)
    window = args.window or (0.2 if args.quick else 0.4)
    result = run(systems, sizes, C.cpu_pair(args), rounds, window)
    print_result(result)
    C.write_json(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
