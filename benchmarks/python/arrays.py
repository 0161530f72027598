"""Arrays as messages: a video frame and a large tensor, three ways.

    python3 benchmarks/python/arrays.py [--rounds N] [--window 0.5] [--quick]
                                        [--reduction max|sum] [--cpus 0,1]
                                        [--json PATH]

Frames per second and GB/s, counted at the consumer, for a 1920x1080x3
uint8 frame (6.2 MB) and a 4096x4096 float32 tensor (64 MiB), each sent
over and over by a producer (spawned, second CPU) to a consumer (this
process, first CPU) that reads the array and reduces it once (--reduction,
default max: one pass over every byte at tens of GB/s, so the transport,
not the reduction, sets the pace; numpy's uint8 sum runs at ~2.5 GB/s and
would cap every method alike). The three methods:

  tachyon      producer bus.send_array(frame, timeout=None); consumer
               recv_zero_copy() + rx.array() + the reduction, in place
  shm_queue    a pool of multiprocessing.shared_memory slots; the producer
               takes a free slot index from one Queue, copies the frame in
               and puts the index on a second Queue; the consumer wraps the
               slot with np.ndarray, reduces, and gives the index back
  pipe         multiprocessing.Pipe(duplex=False): send_bytes of the frame,
               recv_bytes_into a preallocated buffer viewed as the array
               (the fastest Pipe form: pickling adds a copy on each side)

The bus gets the smallest ring that takes the frame (max_payload =
capacity / 2 - 64): 16 MiB for the video frame, 256 MiB for the tensor. The
pool gets as many slots as that ring holds frames (2 and 3): the same frames
in flight, the same cache footprint. Each method's producer and consumer are
plain functions below, written as a user would; their lines are counted and
printed. They run in threads of the two processes (one per method, all but
one blocked at any time), so that every round runs each method once, in
rotating order, in the same two pinned processes: the ratios are medians of
per-round ratios (benchmarks/README.md, "How it measures"). A round asks for
a count of frames (sized from the previous round to last --window seconds);
the first 2 are not timed. Round 0 of each case is a calibration
(it also faults the slots in) and is not reported.
"""
from __future__ import annotations

import inspect
import os
import queue
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

CASES = {  # name: (shape, dtype)
    "frame_1080p_uint8": ((1080, 1920, 3), "uint8"),
    "tensor_4096_float32": ((4096, 4096), "float32"),
}
METHODS = ["tachyon", "shm_queue", "pipe"]
LABELS = {"tachyon": "tachyon send_array / recv_zero_copy + .array()",
          "shm_queue": "shared_memory pool + 2 Queues of indices",
          "pipe": "mp.Pipe send_bytes / recv_bytes_into"}
WARM = 2        # frames of each round that are not timed
MIN_FRAMES = 4  # timed frames per round, at least


class Case:
    def __init__(self, name, reduction):
        import numpy as np

        shape, dtype = CASES[name]
        self.name, self.shape, self.dtype = name, shape, np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.reduction = reduction
        # The smallest ring that takes the frame: max_payload (capacity / 2 - 64)
        # holds the data and its 192-byte header. The pool gets as many slots
        # as the ring holds frames (a 64-byte slot header each), so both have
        # the same frames in flight and the same cache footprint, which
        # decides the rate once frames and ring outgrow the shared L3.
        slot = self.nbytes + 192 + 64
        self.capacity = 1 << (2 * (slot + 64) - 1).bit_length()
        self.slots = self.capacity // slot
        self.path = C.sock_path(f"arrays-{name}")
        self.shm_names = [f"tbench-{os.getpid()}-{name}-{i}" for i in range(self.slots)]

    def reduce(self, a):
        return a.max() if self.reduction == "max" else a.sum()


def make_frame(case):
    import numpy as np

    rng = np.random.default_rng(12)
    if case.dtype == np.uint8:
        return rng.integers(0, 256, case.shape, dtype=np.uint8)
    return rng.standard_normal(case.shape, dtype=np.float32)


# --------------------------------------------------------------------------
# The programs. Between "# program:" and "# end" markers: what a user of each
# method writes (counted by program_lines(); the def lines, comments and
# lines marked "harness" are not counted). `source` yields the frame to
# send, `frames` once per frame to receive; `case` carries the shape, dtype,
# capacity and names that both ends of a real program agree on as constants.

# program: tachyon
def tachyon_producer(case, source):
    import tachyon

    with tachyon.Bus.connect(case.path, timeout=30) as bus:
        for frame in source:
            bus.send_array(frame, timeout=None)


def tachyon_consumer(case, frames):
    import tachyon

    with tachyon.Bus.listen(case.path, case.capacity) as bus:
        for _ in frames:
            with bus.recv_zero_copy() as rx:
                total = case.reduce(rx.array())
    return total  # harness: checked against the sent frame
# end


# program: shm_queue
def shm_queue_producer(case, source, ready, free):
    from multiprocessing import shared_memory

    import numpy as np

    slots = [shared_memory.SharedMemory(name) for name in case.shm_names]
    arrays = [np.ndarray(case.shape, case.dtype, buffer=s.buf) for s in slots]
    for frame in source:
        i = free.get()
        arrays[i][...] = frame
        ready.put(i)
    del arrays
    for s in slots:
        s.close()


def shm_queue_consumer(case, frames, ready, free):
    from multiprocessing import shared_memory

    import numpy as np

    slots = [shared_memory.SharedMemory(name, create=True, size=case.nbytes) for name in case.shm_names]
    arrays = [np.ndarray(case.shape, case.dtype, buffer=s.buf) for s in slots]
    for i in range(len(slots)):
        free.put(i)
    for _ in frames:
        i = ready.get()
        total = case.reduce(arrays[i])
        free.put(i)
    del arrays
    for s in slots:
        s.close()
        s.unlink()
    return total  # harness
# end


# program: pipe
def pipe_producer(case, source, conn):
    for frame in source:
        conn.send_bytes(memoryview(frame).cast("B"))  # send_bytes takes len() of a 3-D view as its size


def pipe_consumer(case, frames, conn):
    import numpy as np

    buf = bytearray(case.nbytes)
    array = np.frombuffer(buf, case.dtype).reshape(case.shape)
    for _ in frames:
        conn.recv_bytes_into(buf)
        total = case.reduce(array)
    return total  # harness
# end


def program_lines():
    """{method: {"producer": n, "consumer": n}}: the counted lines of each
    method's two functions in the marked regions of this file."""
    out = {}
    method, fn = None, None
    for line in inspect.getsource(sys.modules[__name__]).splitlines():
        s = line.strip()
        if s.startswith("# program:"):
            method = s.split(":", 1)[1].strip()
            out[method] = {"producer": 0, "consumer": 0}
            continue
        if s == "# end":
            method = fn = None
            continue
        if method is None or not s or s.startswith("#"):
            continue
        if s.startswith("def "):
            fn = "producer" if "_producer(" in s else "consumer"
            continue
        if "# harness" in s:
            continue
        out[method][fn] += 1
    return out


# --------------------------------------------------------------------------
# harness: the producer process


def _producer_process(cpu, ctrl, links):
    """Runs each case's producer functions in threads; ctrl says which case,
    and how many frames each method sends in each round."""
    C.pin(cpu)  # before any thread starts: threads inherit the affinity
    try:
        while True:
            msg = ctrl.recv()
            if msg[0] == "quit":
                return
            case = msg[1]  # built by the parent: the names hold its pid
            frame = make_frame(case)
            feeds = {m: queue.SimpleQueue() for m in METHODS}
            errors = []

            def source(feed):
                while True:
                    k = feed.get()
                    if k is None:
                        return
                    for _ in range(k):
                        yield frame

            def runner(fn, *args):
                try:
                    fn(*args)
                except BaseException:
                    errors.append(traceback.format_exc())

            link = links[case.name]
            threads = [
                threading.Thread(target=runner, args=(tachyon_producer, case, source(feeds["tachyon"]))),
                threading.Thread(target=runner, args=(shm_queue_producer, case, source(feeds["shm_queue"]),
                                                      link["ready"], link["free"])),
                threading.Thread(target=runner, args=(pipe_producer, case, source(feeds["pipe"]), link["pipe_tx"])),
            ]
            ctrl.send("started")
            for t in threads:
                t.start()
            while True:
                msg = ctrl.recv()
                if msg[0] == "go":
                    feeds[msg[1]].put(msg[2])
                elif msg[0] == "end_case":
                    for f in feeds.values():
                        f.put(None)
                    for t in threads:
                        t.join()
                    ctrl.send(("ended", errors))
                    break
    except BaseException:
        ctrl.send(("error", traceback.format_exc()))
        raise


# --------------------------------------------------------------------------
# harness: the consumer (this process) and the rounds


class Ticks:
    """The consumer's `frames`: yields once per frame of a round and times
    the frames after the first WARM, from the consumer's side."""

    def __init__(self):
        self.feed = queue.SimpleQueue()
        self.done = queue.SimpleQueue()
        self.started = threading.Event()  # the consumer finished its setup

    def __iter__(self):
        self.started.set()
        while True:
            k = self.feed.get()
            if k is None:
                return
            t0 = None
            for i in range(k):
                if i == WARM:
                    t0 = C.now_ns()
                yield i
            self.done.put((k - WARM, C.now_ns() - t0))


def run_case(case, ctrl, link, rounds, window):
    import numpy as np

    frame = make_frame(case)
    expected = case.reduce(frame)
    ticks = {m: Ticks() for m in METHODS}
    results, errors = {}, []

    def runner(m, fn, *args):
        try:
            results[m] = fn(*args)
        except BaseException:
            errors.append(traceback.format_exc())
            ticks[m].done.put(None)  # unblock the rounds

    threads = {
        "shm_queue": threading.Thread(target=runner, args=("shm_queue", shm_queue_consumer, case, ticks["shm_queue"],
                                                           link["ready"], link["free"])),
        "pipe": threading.Thread(target=runner, args=("pipe", pipe_consumer, case, ticks["pipe"], link["pipe_rx"])),
        "tachyon": threading.Thread(target=runner, args=("tachyon", tachyon_consumer, case, ticks["tachyon"])),
    }
    # The shared-memory slots exist before the producer attaches to them;
    # tachyon's listen waits for the producer's connect.
    for m in ("shm_queue", "pipe"):
        threads[m].start()
        if not ticks[m].started.wait(30):
            raise TimeoutError(f"{m}: the consumer did not start")
    threads["tachyon"].start()
    ctrl.send(("case", case))
    reply = ctrl.recv()
    if reply != "started":
        raise RuntimeError(f"the producer failed to start its case: {reply}")

    rates = {m: [] for m in METHODS}
    k_next = {m: WARM + MIN_FRAMES for m in METHODS}
    try:
        for r in range(rounds + 1):  # round 0: calibration, not reported
            order = METHODS[r % len(METHODS):] + METHODS[:r % len(METHODS)]
            for m in order:
                k = k_next[m]
                ticks[m].feed.put(k)
                ctrl.send(("go", m, k))
                try:
                    got = ticks[m].done.get(timeout=120)
                except queue.Empty:
                    raise TimeoutError(f"{case.name} {m}: {k} frames did not arrive in 120 s") from None
                if got is None:
                    raise RuntimeError(f"{m} failed:\n" + "\n".join(errors))
                n, ns = got
                rate = n / (ns / 1e9)
                k_next[m] = WARM + max(MIN_FRAMES, int(rate * window))
                if r > 0:
                    rates[m].append(rate)
            if r > 0:
                C.progress(f"{case.name} round {r}/{rounds}: " + ", ".join(
                    f"{m} {rates[m][-1]:.0f}/s" for m in METHODS))
    finally:
        for m in METHODS:
            ticks[m].feed.put(None)
        ctrl.send(("end_case",))
        for t in threads.values():
            t.join(60)
        reply = ctrl.recv() if ctrl.poll(60) else ("no answer", [])
        for e in errors + list(reply[1]):
            print(e, file=sys.stderr)
    if reply[0] != "ended" or reply[1] or errors:
        raise RuntimeError(f"{case.name}: {reply}\n" + "\n".join(errors))
    for m in METHODS:  # every method delivered the frame it was sent
        if not np.array_equal(results[m], expected):
            raise AssertionError(f"{case.name} {m}: reduced to {results[m]}, the sent frame gives {expected}")

    out = {"shape": list(case.shape), "dtype": str(case.dtype), "nbytes": case.nbytes, "capacity": case.capacity,
           "slots": case.slots, "methods": {}}
    for m in METHODS:
        v = rates[m]
        out["methods"][m] = {"frames_per_s": C.median(v), "min": min(v), "max": max(v), "rounds": v,
                             "gb_per_s": C.median(v) * case.nbytes / 1e9}
    for ref in ("shm_queue", "pipe"):
        ratios = [a / b for a, b in zip(rates["tachyon"], rates[ref])]
        out[f"tachyon_over_{ref}"] = {"median": C.median(ratios), "min": min(ratios), "max": max(ratios),
                                      "ratios": ratios}
    out["reduction_alone_per_s"] = reduction_rate(case, frame)
    return out


def reduction_rate(case, frame, seconds=0.3):
    """The consumer's own work: the reduction over a hot array, per second."""
    case.reduce(frame)
    n, t0 = 0, time.perf_counter()
    while True:
        case.reduce(frame)
        n += 1
        t = time.perf_counter()
        if t - t0 >= seconds:
            return n / (t - t0)


def run(rounds, window, reduction, cpus, cases=tuple(CASES)):
    C.pin(cpus[0])
    ctx = C.spawn_ctx()
    ctrl, ctrl_child = ctx.Pipe()
    links = {}
    for name in CASES:  # Queues and Pipes travel to the child only at its start
        rx, tx = ctx.Pipe(duplex=False)
        links[name] = {"ready": ctx.Queue(), "free": ctx.Queue(), "pipe_rx": rx, "pipe_tx": tx}
    proc = ctx.Process(target=_producer_process, args=(cpus[1], ctrl_child, links), daemon=True)
    proc.start()
    res = {"benchmark": "arrays", "cpus": list(cpus), "rounds": rounds, "window_s": window,
           "reduction": reduction, "program_lines": program_lines(), "cases": {}}
    try:
        for name in cases:
            res["cases"][name] = run_case(Case(name, reduction), ctrl, links[name], rounds, window)
        ctrl.send(("quit",))
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return res


def print_result(r):
    print(f"arrays as messages: {r['rounds']} rounds of ~{r['window_s']} s per method, cpus {r['cpus']} (consumer, "
          f"producer); consumer reads each array and reduces it with .{r['reduction']}()")
    for name, d in r["cases"].items():
        print(f"\n{' x '.join(map(str, d['shape']))} {d['dtype']} ({d['nbytes'] / 1e6:.1f} MB; ring capacity "
              f"{d['capacity'] >> 20} MiB and shared-memory pool: {d['slots']} frames in flight)")
        print(f"  {'method':48s} {'frames/s':>9s} {'(range)':>17s} {'GB/s':>7s}")
        for m in METHODS:
            v = d["methods"][m]
            spread = f"({v['min']:.0f}..{v['max']:.0f})"
            print(f"  {LABELS[m]:48s} {v['frames_per_s']:9.1f} {spread:>17s} {v['gb_per_s']:7.2f}")
        for ref in ("shm_queue", "pipe"):
            q = d[f"tachyon_over_{ref}"]
            print(f"  tachyon / {ref:9s}: {q['median']:.2f} (median of per-round ratios; {q['min']:.2f}..{q['max']:.2f})")
        red = d["reduction_alone_per_s"]
        print(f"  .{r['reduction']}() alone over a hot array: {red:.0f}/s ({red * d['nbytes'] / 1e9:.1f} GB/s), "
              f"the ceiling of every method")
    print("\nprogram lines (producer + consumer, without def lines, imports included):")
    for m, n in r["program_lines"].items():
        print(f"  {LABELS[m]:48s} {n['producer']:2d} + {n['consumer']:2d} = {n['producer'] + n['consumer']}")


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--window", type=float, default=None, help="seconds per method per round")
    p.add_argument("--reduction", choices=["max", "sum"], default="max")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ", ".join(CASES))
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    window = args.window or (0.3 if args.quick else 0.5)
    r = run(rounds, window, args.reduction, C.cpu_pair(args), args.cases.split(","))
    print_result(r)
    C.write_json(args, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
