"""Shared helpers of the Python benchmarks (not a benchmark itself).

Every benchmark in this folder is a script that runs alone and prints its
numbers; with ``--json PATH`` it also writes them for benchmarks/run_all.py.
The conventions they share live here:

* two processes, the parent pinned to the first CPU of ``--cpus`` (default
  0,1) and the child (multiprocessing, spawn) to the second;
* paired rounds: a floor and a candidate alternate in short rounds inside
  the same two processes, and a ratio is the median of the per-round ratios;
* ``progress(...)`` lines on stderr (``run_all`` shows the last one);
* the in-process C floors of ``_native.c`` (built on first use into
  build/bench/python/).
"""
from __future__ import annotations

import argparse
import array
import atexit
import ctypes
import json
import math
import mmap
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD = REPO / "build" / "bench" / "python"

now_ns = time.perf_counter_ns


# --------------------------------------------------------------------------
# command line and output


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cpus", default="0,1", help="parent,child CPUs (default 0,1)")
    p.add_argument("--rounds", type=int, default=None, help="paired rounds (default: per benchmark)")
    p.add_argument("--quick", action="store_true", help="fewer rounds and iterations")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return p


def cpu_pair(args) -> tuple[int, int]:
    a, b = (int(x) for x in args.cpus.split(","))
    return a, b


def write_json(args, result: dict) -> None:
    result.setdefault("python", platform.python_version())
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=_jsonable))


def _jsonable(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


def progress(msg: str) -> None:
    """One status line on stderr; run_all shows the latest as the step's state."""
    print(f"PROGRESS {msg}", file=sys.stderr, flush=True)


def fmt_ns(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e4:
        return f"{v / 1e3:.1f} us"
    return f"{v:.0f} ns"


# --------------------------------------------------------------------------
# statistics


def percentile(sorted_vals, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted sequence."""
    n = len(sorted_vals)
    if n == 0:
        return float("nan")
    k = min(n - 1, max(0, int(math.ceil(q / 100.0 * n)) - 1))
    return float(sorted_vals[k])


def summary(samples) -> dict:
    s = sorted(samples)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "min": float(s[0]),
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "p99.9": percentile(s, 99.9),
        "max": float(s[-1]),
        "mean": sum(s) / len(s),
    }


def median(vals) -> float:
    v = sorted(x for x in vals if x is not None and not math.isnan(x))
    if not v:
        return float("nan")
    m = len(v) // 2
    return float(v[m]) if len(v) % 2 else (v[m - 1] + v[m]) / 2.0


def paired(num_p50s, den_p50s) -> dict:
    """Median of per-round ratios and differences num/den, num-den."""
    ratios = [a / b for a, b in zip(num_p50s, den_p50s) if b]
    diffs = [a - b for a, b in zip(num_p50s, den_p50s)]
    return {
        "rounds": len(ratios),
        "ratio_median": median(ratios),
        "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "diff_median": median(diffs),
        "ratios": ratios,
        "diffs": diffs,
    }


# The cross-CPU floor on these VMs is bimodal (~120-150 ns in one vCPU
# placement, ~470-570 ns in the other): a round's C line-floor p50 says
# which placement it ran in.
PLACEMENT_SPLIT_NS = 300


def by_placement(c2c_p50s, values) -> dict:
    """Median of per-round values, split by the round's placement."""
    out = {}
    for name, keep in (("fast", lambda c: c < PLACEMENT_SPLIT_NS), ("slow", lambda c: c >= PLACEMENT_SPLIT_NS)):
        v = [x for c, x in zip(c2c_p50s, values) if keep(c)]
        if v:
            out[name] = {"rounds": len(v), "median": median(v)}
    return out


CDF_P = [i / 500 for i in range(1, 500)] + [0.995, 0.999, 0.9995, 0.9999, 1.0]


def cdf(samples) -> list:
    """The empirical CDF: the sample at each probability of CDF_P (for plots)."""
    s = sorted(samples)
    return [int(percentile(s, 100 * p)) for p in CDF_P] if s else []


# --------------------------------------------------------------------------
# processes


def pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as e:  # a CPU that does not exist here
            print(f"warning: cannot pin to CPU {cpu}: {e}", file=sys.stderr)


def spawn_ctx():
    import multiprocessing as mp

    return mp.get_context("spawn")


def report_failure(ctrl) -> None:
    """In a spawned child, inside `except BaseException:`: send the traceback
    over the control pipe (best effort), so the parent says why it stopped."""
    import traceback

    try:
        ctrl.send("error: " + traceback.format_exc())
    except Exception:
        pass


def sock_path(tag: str) -> str:
    return f"/tmp/tbench-{os.getpid()}-{tag}.sock"


class SharedPage:
    """A page of shared memory (a /dev/shm file, mmapped), passable by name to
    a spawned process. `word(offset)` gives its address for ctypes."""

    def __init__(self, name: str | None = None, size: int = 4096, create: bool = True):
        self.size = size
        self.name = name or f"/dev/shm/tbench-{os.getpid()}-{id(self):x}"
        fd = os.open(self.name, (os.O_CREAT | os.O_RDWR) if create else os.O_RDWR, 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.owner = create
        self._anchor = ctypes.c_char.from_buffer(self.map)
        self.base = ctypes.addressof(self._anchor)
        if create:  # unlinked even when the benchmark dies on an exception
            atexit.register(_unlink_quietly, self.name)

    def addr(self, offset: int = 0) -> int:
        return self.base + offset

    def close(self) -> None:
        del self._anchor
        self.map.close()
        if self.owner:
            _unlink_quietly(self.name)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------
# native helpers


def _stale(target: Path, *sources: Path) -> bool:
    if not target.exists():
        return True
    t = target.stat().st_mtime
    return any(s.exists() and s.stat().st_mtime > t for s in sources)


def cc() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build_native() -> Path:
    """Compile _native.c into build/bench/python/_native.so (if stale).

    Not with the core's flags (csrc/flags.mk): the floors measure the best
    this machine does (memcpy, a cache-line round trip), so they are built
    for it, -O3 -march=native, and link nothing of tachyon."""
    src = HERE / "_native.c"
    out = BUILD / "_native.so"
    if _stale(out, src):
        compiler = cc()
        if not compiler:
            raise RuntimeError("no C compiler (cc/gcc) for benchmarks/python/_native.c")
        BUILD.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([compiler, "-O3", "-march=native", "-std=c11", "-shared", "-fPIC", "-o", str(tmp), str(src)],
                       check=True)
        os.replace(tmp, out)
    return out


def build_c_producer() -> Path:
    """Build c_producer.c against the release core (make -C benchmarks), so it
    gets the core's release flags from csrc/flags.mk like the C tools."""
    out = BUILD / "c_producer"
    subprocess.run(["make", "-s", "-C", str(HERE.parent), "../build/bench/python/c_producer"], check=True,
                   stdout=subprocess.DEVNULL)
    return out


_native = None


def native():
    """The ctypes handle of _native.so, with argument types set."""
    global _native
    if _native is None:
        lib = ctypes.CDLL(str(build_native()))
        vp, i64p, i32 = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
        for name in ("c2c_ping", "futex_ping"):
            getattr(lib, name).argtypes = [vp, vp, i64p, i32]
            getattr(lib, name).restype = i32
        for name in ("c2c_pong", "futex_pong"):
            getattr(lib, name).argtypes = [vp, vp, i32]
            getattr(lib, name).restype = i32
        lib.memcpy_ns.argtypes = [vp, vp, ctypes.c_size_t, i32]
        lib.memcpy_ns.restype = ctypes.c_int64
        u64 = ctypes.c_uint64
        lib.ring_produce.argtypes = [vp, vp, u64, u64, vp]
        lib.ring_produce.restype = ctypes.c_int64
        lib.ring_consume.argtypes = [vp, vp, u64, u64, ctypes.c_int64, vp, vp]
        lib.ring_consume.restype = ctypes.c_int64
        _native = lib
    return _native


def buffer_addr(buf) -> int:
    """Address of a writable buffer (array.array, bytearray, numpy array)."""
    if isinstance(buf, array.array):
        return buf.buffer_info()[0]
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def memcpy_bandwidth(size: int, min_seconds: float = 0.05) -> float:
    """Single-thread memcpy bandwidth (bytes/s) at `size` bytes, hot buffers."""
    lib = native()
    src = bytearray(b"\x5a" * size)
    dst = bytearray(size)
    sa, da = buffer_addr(src), buffer_addr(dst)
    iters = max(1, int(min_seconds * 10e9 / max(size, 1)))  # assume ~10 GB/s first
    ns = lib.memcpy_ns(da, sa, size, iters)
    if ns < min_seconds * 0.5e9:  # faster than assumed: run long enough
        iters = max(1, int(iters * min_seconds * 1e9 / max(ns, 1)))
        ns = lib.memcpy_ns(da, sa, size, iters)
    return size * iters / (ns / 1e9)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod, dist in (("tachyon", "tachyon-ipc"), ("numpy", "numpy"), ("torch", "torch"), ("zmq", "pyzmq"),
                      ("faster_fifo", "faster-fifo"), ("iceoryx2", "iceoryx2"), ("posix_ipc", "posix_ipc"),
                      ("matplotlib", "matplotlib")):
        try:
            from importlib.metadata import version

            out[dist] = version(dist)
        except Exception:
            out[dist] = None
    return out
