#!/usr/bin/env python3
"""Run every tachyon benchmark and write a report.

    python3 benchmarks/run_all.py [--quick] [--out DIR] [--rounds N] [--cpus 0,1]
                                  [--only STEP,...] [--skip STEP,...]

Runs the C tools of benchmarks/c (built with `make -C benchmarks`; a tool
that is missing becomes a "not built" row) and the Python benchmarks of
benchmarks/python, each in its own processes pinned to the two --cpus, one
step after the other, with a progress line per step (current step, its
latest status, elapsed time). Writes to --out (default
benchmarks/results/<UTC timestamp>):

  results.md        the table: measure, ours, reference, ratio, target, met?
  results.json      every number of every step, and the table's rows
  latency_cdf.png   round-trip CDF per system (log x)
  throughput.png    throughput against message size (GB/s and msg/s)
  machine.txt       lscpu summary, kernel, Python, package versions, git state
  logs/             each step's output (stdout .out, stderr .err); local
                    only: git ignores logs/ (the report quotes a failed
                    step's last error line instead of linking to it)

A full run takes ~5 minutes on the 2-vCPU VM (budget 15); --quick ~2
(budget 3). Ratios are medians of per-round ratios: floor and candidate
alternate in short rounds in the same pinned processes (these VMs switch
vCPU placement without notice; never compare numbers taken minutes apart).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = HERE / "python"
BENCH = REPO / "build" / "bench"
sys.path.insert(0, str(PY))
import _common as C  # noqa: E402

STREAM_SIZES = "8,64,512,4096,65536,1048576"


# --------------------------------------------------------------------------
# steps


class Step:
    def __init__(self, key, title, cmd=None, kind="py", timeout=300, full_only=False):
        self.key, self.title, self.cmd, self.kind = key, title, cmd, kind
        self.timeout, self.full_only = timeout, full_only
        self.status, self.seconds, self.result, self.error = "pending", 0.0, None, None


def make_steps(a, bench=None):
    BENCH = bench or globals()["BENCH"]  # noqa: N806 (the snapshot's copy of build/bench)
    q = a.quick
    r = a.rounds
    cpus = a.cpus
    py = [sys.executable]

    def rounds(full, quick):
        return str(r or (quick if q else full))

    def pyjson(name):
        return str(a.out / "raw" / f"{name}.json")

    steps = [
        Step("build", "build the C tools (make -C benchmarks) and the Python helpers", kind="build"),
        Step("c_floors", "C floors: cache line + futex round trips, memcpy",
             [BENCH / "floors", "--json", "--cpus", cpus, "--rounds", rounds(10, 5),
              "--iters", "20000" if not q else "10000", "--futex-iters", "2000" if not q else "1000"], kind="c"),
        Step("c_pingpong", "C round trip 32 B, pure spin, paired with the cache-line floor",
             [BENCH / "pingpong", "--json", "--cpus", cpus, "--rounds", rounds(20, 10),
              "--iters", "20000" if not q else "10000"], kind="c"),
        Step("c_pingpong_sleep", "C round trip 32 B, sleeping consumers, paired with the futex floor",
             [BENCH / "pingpong", "--json", "--hybrid", "--cpus", cpus, "--rounds", rounds(20, 10),
              "--iters", "2000" if not q else "1000"], kind="c"),
        Step("c_stream", "C streaming 8 B..1 MiB (send per message)",
             [BENCH / "stream", "--json", "--cpus", cpus, "--sizes", STREAM_SIZES, "--rounds", "3",
              "--seconds", "0.3" if not q else "0.15"], kind="c"),
        Step("c_stream_batch", "C streaming 8 B..1 MiB (batch 256, pure spin)",
             [BENCH / "stream", "--json", "--cpus", cpus, "--sizes", STREAM_SIZES, "--rounds", "3",
              "--seconds", "0.3" if not q else "0.15", "--batch", "256", "--pure-spin"], kind="c"),
        Step("py_rtt_floors", "Python round trip: pure-Python floor, C floor, ours (3 variants)",
             py + [PY / "rtt.py", "--set", "floors", "--cpus", cpus, "--rounds", rounds(30, 10),
                   "--iters", "20000" if not q else "5000", "--json", pyjson("py_rtt_floors")]),
        Step("py_rtt_peers", "Python round trip: ours against the peers",
             py + [PY / "rtt.py", "--set", "peers", "--cpus", cpus, "--rounds", rounds(20, 10),
                   "--iters", "20000" if not q else "5000", "--slow-iters", "1000" if not q else "300",
                   "--json", pyjson("py_rtt_peers")]),
        Step("py_rtt_blocking", "Python round trip, sleeping consumers, paired with raw futex",
             py + [PY / "rtt.py", "--set", "blocking", "--cpus", cpus, "--rounds", rounds(20, 10),
                   "--slow-iters", "1000" if not q else "300", "--json", pyjson("py_rtt_blocking")]),
        Step("py_asyncio_rtt", "asyncio round trip: recv_async/send_async against zmq.asyncio REQ/REP",
             py + [PY / "asyncio_rtt.py", "--cpus", cpus, "--rounds", rounds(10, 4),
                   "--iters", "5000" if not q else "1000", "--json", pyjson("py_asyncio_rtt")]),
        Step("py_rpc", "request/reply round trip: RpcBus call+wait and request, two buses, "
             "pyzmq REQ/REP, multiprocessing.Pipe",
             py + [PY / "rpc.py", "--cpus", cpus, "--rounds", rounds(8, 3),
                   "--iters", "10000" if not q else "2000", "--json", pyjson("py_rpc")]),
        Step("py_rate", "Python one-way message rate, 64 B (Python and C producer)",
             py + [PY / "stream.py", "--systems", "tachyon,tachyon_c", "--sizes", "64", "--cpus", cpus,
                   "--rounds", "9" if not q else "5", "--window", "0.3" if not q else "0.2",
                   "--json", pyjson("py_rate")]),
        Step("py_throughput", "Python throughput against message size, ours and peers",
             py + [PY / "stream.py", "--systems", "all", "--sizes", STREAM_SIZES if not q else "64,4096,1048576",
                   "--cpus", cpus, "--rounds", "3", "--window", "0.25" if not q else "0.12",
                   "--json", pyjson("py_throughput")], timeout=600),
        Step("py_bandwidth", "Python bandwidth, 1 MiB messages, against memcpy",
             py + [PY / "bandwidth.py", "--cpus", cpus, "--rounds", rounds(20, 8), "--window", "0.15" if not q else "0.1",
                   "--json", pyjson("py_bandwidth")]),
        Step("py_dlpack", "DLPack hand-over, 64 MiB against 64 B",
             py + [PY / "dlpack.py", "--cpus", cpus, "--rounds", rounds(12, 5), "--per-round", "12" if not q else "6",
                   "--json", pyjson("py_dlpack")]),
        Step("py_handoff", "receive here, process there: worker threads dropping zero-copy arrays",
             py + [PY / "handoff.py", "--cpus", cpus, "--rounds", rounds(7, 3),
                   "--json", pyjson("py_handoff")] + (["--quick"] if q else [])),
        Step("py_arrays", "arrays as messages: send_array against shared_memory + Queue and mp.Pipe",
             py + [PY / "arrays.py", "--cpus", cpus, "--rounds", rounds(7, 3), "--window", "0.5" if not q else "0.3",
                   "--json", pyjson("py_arrays")]),
        Step("syscalls", "system calls per message, both sides awake (strace -c)",
             py + [PY / "syscalls.py", "--cpus", cpus, "--json", pyjson("syscalls")] + (["--quick"] if q else [])),
        Step("py_observer", "ping-pong p50 with and without `python -m tachyon top` watching",
             py + [PY / "observer.py", "--cpus", cpus, "--rounds", rounds(8, 4),
                   "--json", pyjson("py_observer")] + (["--quick"] if q else [])),
        Step("py_net", "across hosts: tcp bus against raw pyzmq DEALER/ROUTER and PUSH/PULL (loopback)",
             py + [PY / "net.py", "--json", pyjson("py_net")] + (["--quick"] if q else []), timeout=600),
        Step("percall", "per-call cost of the Python API (one process)",
             py + [PY / "percall.py", "--cpu", cpus.split(",")[0], "--json", pyjson("percall")]),
        Step("profile", "instructions per call (valgrind callgrind)",
             py + [PY / "profile_calls.py", "--json", pyjson("profile")], full_only=True),
    ]
    return steps


# --------------------------------------------------------------------------
# running, with a progress line


class Progress:
    def __init__(self, total_steps, t_start):
        self.tty = sys.stdout.isatty()
        self.total, self.t_start = total_steps, t_start
        self.lock = threading.Lock()
        self.status = ""
        self.last_plain = 0.0

    def width(self):
        return shutil.get_terminal_size((100, 20)).columns

    def line(self, i, step, t0, final=None):
        el = time.monotonic() - t0
        tot = time.monotonic() - self.t_start
        head = f"[{i:2d}/{self.total}] {step.title}"
        if final:
            return f"{head}: {final} ({el:.1f} s; total {int(tot // 60)}:{tot % 60:04.1f})"
        st = f" | {self.status}" if self.status else ""
        return f"{head} | {el:.1f} s{st}"

    def update(self, i, step, t0):
        with self.lock:
            if self.tty:
                s = self.line(i, step, t0)
                w = self.width() - 1
                sys.stdout.write("\r" + (s if len(s) <= w else s[:w - 1] + "…").ljust(w))
                sys.stdout.flush()
            elif time.monotonic() - self.last_plain >= 15:
                self.last_plain = time.monotonic()
                print("    " + self.line(i, step, t0), flush=True)

    def start(self, i, step):
        self.status = ""
        self.last_plain = time.monotonic()
        if not self.tty:
            print(f"[{i:2d}/{self.total}] {step.title} ...", flush=True)

    def finish(self, i, step, t0, what):
        with self.lock:
            s = self.line(i, step, t0, final=what)
            if self.tty:
                w = self.width() - 1
                sys.stdout.write("\r" + s.ljust(w) + "\n")
            else:
                print("    " + s)
            sys.stdout.flush()


def run_process(step, i, prog, logs, env=None):
    """Run step.cmd; stdout to logs/<key>.out, stderr to logs/<key>.err."""
    out_path, err_path = logs / f"{step.key}.out", logs / f"{step.key}.err"
    cmd = [str(x) for x in step.cmd]
    t0 = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                start_new_session=True, env=env)

        def reader():
            for line in proc.stderr:
                err.write(line)
                err.flush()
                s = line.strip()
                if s.startswith("PROGRESS "):
                    prog.status = s[9:]
                elif s.startswith("round ") and "\r" not in s:
                    prog.status = s
                elif "\r" in line:
                    prog.status = line.split("\r")[-1].strip() or prog.status

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        rc = None
        while rc is None:
            try:
                rc = proc.wait(0.25)
            except subprocess.TimeoutExpired:
                prog.update(i, step, t0)
                if time.monotonic() - t0 > step.timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    rc = "timeout"
        th.join(5)
    return rc, time.monotonic() - t0


def last_line(path):
    """The last non-empty line of a log, for the report: logs/ stays in the
    run's own folder (it is not committed with benchmarks/latest), so the
    report quotes the error instead of linking to it."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return f"(no {Path(path).name})"
    return lines[-1][:200] if lines else f"(empty {Path(path).name})"


def parse_json_lines(path):
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def do_build(a, logs):
    """make -C benchmarks, _native.so, c_producer. Returns a note per part."""
    notes = {}
    with open(logs / "build.out", "w") as log:
        try:
            r = subprocess.run(["make", "-C", str(HERE)], stdout=log, stderr=subprocess.STDOUT, timeout=300)
            notes["c_tools"] = "ok" if r.returncode == 0 else f"make -C benchmarks failed (exit {r.returncode})"
        except Exception as e:
            notes["c_tools"] = f"make -C benchmarks failed: {e}"
        for name, fn in (("_native.so", C.build_native), ("c_producer", C.build_c_producer)):
            try:
                fn()
                notes[name] = "ok"
            except Exception as e:
                notes[name] = f"failed: {e}"
            log.write(f"{name}: {notes[name]}\n")
    for tool in ("floors", "pingpong", "stream"):
        notes[tool] = "ok" if (BENCH / tool).exists() else "not built"
    return notes


# --------------------------------------------------------------------------
# machine


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, shell=isinstance(cmd, str)).stdout.strip()
    except Exception as e:
        return f"({e})"


def installer(dist):
    try:
        from importlib.metadata import distribution

        d = distribution(dist)
        return (d.read_text("INSTALLER") or "?").strip()
    except Exception:
        return None


def busy_check():
    """Load average and other processes using a CPU right now (they skew every number)."""
    try:
        load = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        load = None
    busy = []
    out = sh(["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers"])
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and int(parts[0]) != os.getpid():
            try:
                if float(parts[1]) >= 20:
                    busy.append(f"{parts[2]} (pid {parts[0]}, {parts[1]}% CPU)")
            except ValueError:
                pass
    return {"loadavg_1min": load, "busy_processes": busy}


def snapshot(a):
    """Copy the tachyon package (with its built extension) and the C tools to
    a private folder, so a rebuild by someone else during the run cannot mix
    two builds into one report. Returns the folder (or None)."""
    import tempfile

    try:
        import importlib.util

        spec = importlib.util.find_spec("tachyon")
        pkg = Path(spec.origin).parent
    except Exception:
        return None
    snap = Path(tempfile.mkdtemp(prefix="tbench-snapshot-"))
    shutil.copytree(pkg, snap / "tachyon", ignore=shutil.ignore_patterns("__pycache__"))
    (snap / "bench").mkdir()
    for tool in ("floors", "pingpong", "stream"):
        if (BENCH / tool).exists():
            shutil.copy2(BENCH / tool, snap / "bench" / tool)
    return snap


def extension_id():
    """sha256 (first 16 hex) and mtime of the tachyon extension that imports, or None."""
    try:
        import hashlib
        import importlib.util

        spec = importlib.util.find_spec("tachyon._core")
        path = Path(spec.origin)
        h = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return {"path": str(path), "sha256_16": h, "mtime": mtime}
    except Exception:
        return None


def machine_info(a):
    info = {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "cpus_used": a.cpus, "mode": "quick" if a.quick else "full"}
    lscpu = sh(["lscpu"])
    keep = ("Architecture", "Model name", "CPU(s)", "On-line CPU(s) list", "Thread(s) per core", "Core(s) per socket",
            "Socket(s)", "Hypervisor vendor", "Virtualization type", "L1d cache", "L2 cache", "L3 cache", "NUMA node(s)",
            "CPU max MHz", "BogoMIPS")
    info["lscpu"] = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lscpu.splitlines())
                     if k.strip() in keep}
    info["kernel"] = platform.platform()
    info["uname"] = sh(["uname", "-srvm"])
    try:
        info["clocksource"] = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text().strip()
    except OSError:
        info["clocksource"] = None
    info["python"] = f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"
    info["packages"] = C.versions()
    info["installers"] = {d: installer(d) for d in ("pyzmq", "faster-fifo", "iceoryx2", "posix_ipc", "numpy", "torch")}
    info["cc"] = sh([C.cc() or "cc", "--version"]).splitlines()[0] if C.cc() else None
    info["git"] = {"head": sh(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
                   "changed_files": len([x for x in sh(["git", "-C", str(REPO), "status", "--porcelain"]).splitlines()
                                         if x.strip()])}
    try:
        import tachyon

        info["tachyon"] = {"version": tachyon.__version__, "core": getattr(tachyon._core, "CORE_VERSION", None),
                           "wire": getattr(tachyon._core, "WIRE_VERSION", None), "path": tachyon.__file__}
    except Exception as e:
        info["tachyon"] = f"import failed: {e}"
    info["extension"] = extension_id()
    info["core_lib"] = None
    lib = REPO / "build" / "csrc" / "release" / "libtachyon.a"
    if lib.exists():
        import hashlib

        info["core_lib"] = {"path": str(lib), "sha256_16": hashlib.sha256(lib.read_bytes()).hexdigest()[:16]}
    perf = sh("perf stat -e instructions true 2>&1")
    info["perf_counters"] = "not supported" if "not supported" in perf or not perf else "available"
    info["strace"] = sh("strace -V 2>&1 | head -1")
    info["valgrind"] = sh("valgrind --version 2>&1")
    return info, lscpu


def write_machine(a, info, lscpu):
    lines = [f"date (UTC): {info['date_utc']}", f"run: {info['mode']}, CPUs {info['cpus_used']}",
             f"kernel: {info['uname']}", f"clocksource: {info['clocksource']}", f"python: {info['python']}",
             f"compiler: {info['cc']}", f"git: {info['git']['head']} ({info['git']['changed_files']} files changed "
             "or untracked)", f"tachyon: {info['tachyon']}", f"extension binary: {info['extension']}",
             f"C core library (C tools): {info['core_lib']}",
             f"run from a private copy of the package and the C tools (immune to rebuilds during the run): "
             f"{info.get('snapshot')}", f"at the start: {info.get('busy_at_start')}", f"hardware counters (perf stat): {info['perf_counters']}",
             f"strace: {info['strace']}", f"valgrind: {info['valgrind']}", "", "packages:"]
    for k, v in info["packages"].items():
        inst = info["installers"].get(k)
        lines.append(f"  {k:12s} {v or 'not installed'}" + (f"  (installer: {inst})" if inst else ""))
    lines += ["", "lscpu:", lscpu]
    (a.out / "machine.txt").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# the table


def ns(v):
    return C.fmt_ns(v) if v is not None else "-"


def gbs(v):
    return f"{v / 1e9:.2f} GB/s" if v else "-"


def mmsg(v):
    if not v:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M msg/s"
    return f"{v / 1e3:.1f} k msg/s" if v >= 1e3 else f"{v:.0f} msg/s"


def row(section, measure, ours="-", ref="-", ratio="-", target="-", met=None, note=""):
    return {"section": section, "measure": measure, "ours": ours, "reference": ref, "ratio": ratio,
            "target": target, "met": met, "note": note}


def missing(steps, key):
    st = steps.get(key)
    if st is None:
        return "not run (skipped)"
    if st.status == "not built":
        return "not built"
    if st.status != "ok":
        return f"not run ({st.status}{': ' + st.error if st.error else ''})"
    return None


def build_rows(steps, a):
    R = []
    S1, S2, S3, S4, S5 = ("1. Floors", "2. Ours, C level", "3. Ours, from Python", "4. Peers, from Python (RTT p50, 32 B)",
                          "5. Where the Python time goes")
    res = {k: s.result for k, s in steps.items()}

    # ---- 1. floors
    m = missing(steps, "c_floors")
    if m:
        R.append(row(S1, "bare cache-line ping-pong RTT (C, `floors`)", ref=m))
        R.append(row(S1, "raw futex sleep/wake ping-pong RTT (C, `floors`)", ref=m))
        R.append(row(S1, "memcpy bandwidth 64 KiB / 1 MiB / 64 MiB (C, `floors`)", ref=m))
    else:
        by = {}
        for j in res["c_floors"]:
            by.setdefault(j.get("bench"), []).append(j)
        for key, label in (("floor_line", "bare cache-line ping-pong RTT, 2 processes (C, `floors`)"),
                           ("floor_futex", "raw futex sleep/wake ping-pong RTT (C, `floors`)")):
            j = (by.get(key) or [{}])[0].get("rtt_ns")
            R.append(row(S1, label, ref=f"p50 {ns(j['p50'])}, p99 {ns(j['p99'])}" if j else "no data"))
        for j in by.get("floor_memcpy", []):
            R.append(row(S1, f"memcpy bandwidth {j['size'] >> 10} KiB, one thread (C, `floors`)",
                         ref=f"{j['gb_per_s']:.2f} GB/s"))
    m = missing(steps, "py_rtt_floors")
    if m:
        R.append(row(S1, "pure-Python shm flag ping-pong RTT", ref=m))
    else:
        sy = res["py_rtt_floors"]["systems"]
        d = sy.get("pyshm")
        c2c = sy.get("c2c")
        pr = res["py_rtt_floors"]["pairs"].get("pyshm/c2c")
        R.append(row(S1, "pure-Python shm flag ping-pong RTT (two processes spinning on mmap bytes)",
                     ref=f"p50 {ns(d['p50'])}, p99 {ns(d['p99'])}" if d else "-",
                     ratio=f"{pr['ratio_median']:.2f} x C line floor" if pr else "-",
                     note=f"C line floor in the same rounds: p50 {ns(c2c['p50'])}" if c2c else ""))

    # ---- 2. C level
    m = missing(steps, "c_pingpong")
    if m:
        R.append(row(S2, "C RTT p50, 32 B, pure spin / bare cache-line floor", ours=m, target="<= 1.1"))
    else:
        j = res["c_pingpong"][0] if res["c_pingpong"] else None
        if j:
            r = j["ratio_p50_median"]
            R.append(row(S2, f"C RTT p50, 32 B, pure spin / cache-line floor ({j['rounds']} paired rounds x {j['iters']})",
                         ours=f"p50 {ns(j['tachyon_ns']['p50'])}, p99 {ns(j['tachyon_ns']['p99'])}",
                         ref=f"p50 {ns(j['floor_ns']['p50'])}, p99 {ns(j['floor_ns']['p99'])}",
                         ratio=f"{r:.2f} (rounds {j['ratio_p50_min']:.2f}..{j['ratio_p50_max']:.2f})",
                         target="<= 1.1", met=r <= 1.1))
            # the two layout floors pingpong measures in the same rounds
            for key, name, what in (
                    ("layout", "layout floor", "the least a ring of the v4 wire layout costs: head, slot "
                                               "header and payload on their own lines"),
                    ("stamped", "stamped-layout floor", "the least a ring with position stamps costs: "
                                                        "payload in the header line, next stamp cleared, "
                                                        "head and tail stored, no checks")):
                if f"{key}_ns" not in j:
                    continue
                R.append(row(S2, f"C RTT p50, 32 B, pure spin / {name} ({what}; same rounds)",
                             ours=f"p50 {ns(j['tachyon_ns']['p50'])}, p99 {ns(j['tachyon_ns']['p99'])}",
                             ref=f"p50 {ns(j[key + '_ns']['p50'])}, p99 {ns(j[key + '_ns']['p99'])}",
                             ratio=f"{j['ratio_' + key + '_p50_median']:.2f}",
                             note=f"{name} / cache-line floor in the same rounds: "
                                  f"{j[key + '_over_floor_p50_median']:.2f}"))
    m = missing(steps, "c_pingpong_sleep")
    if m:
        R.append(row(S2, "C RTT p50, sleeping consumers / raw futex ping-pong", ours=m, target="<= 1.1"))
    else:
        j = res["c_pingpong_sleep"][0] if res["c_pingpong_sleep"] else None
        if j:
            r = j["ratio_p50_median"]
            R.append(row(S2, f"C RTT p50, sleeping consumers (spin 1) / raw futex ping-pong ({j['rounds']} paired rounds)",
                         ours=f"p50 {ns(j['tachyon_ns']['p50'])}, p99 {ns(j['tachyon_ns']['p99'])}",
                         ref=f"p50 {ns(j['floor_ns']['p50'])}, p99 {ns(j['floor_ns']['p99'])}",
                         ratio=f"{r:.2f} (rounds {j['ratio_p50_min']:.2f}..{j['ratio_p50_max']:.2f})",
                         target="<= 1.1", met=r <= 1.1))
    memcpy1m = None
    if not missing(steps, "c_floors"):
        for j in res["c_floors"]:
            if j.get("bench") == "floor_memcpy" and j.get("size") == 1 << 20:
                memcpy1m = j["gb_per_s"] * 1e9
    for key, what in (("c_stream", "send per message, hybrid consumer"), ("c_stream_batch", "batch 256, pure spin")):
        m = missing(steps, key)
        if m:
            R.append(row(S2, f"C streaming throughput 8 B..1 MiB ({what})", ours=m))
            continue
        for j in res[key]:
            ratio, ref = "-", "-"
            if "floor_msgs_per_s" in j:
                ref = f"bare ring {mmsg(j['floor_msgs_per_s'])}"
            if "ratio_median" in j:
                ratio = f"{j['ratio_median']:.2f} x bare ring (paired)"
            if j["size"] == 1 << 20 and memcpy1m:
                ratio += f"; {j['gb_per_s'] * 1e9 / memcpy1m:.2f} x memcpy 1 MiB (`floors`, not paired)"
            R.append(row(S2, f"C streaming {fmt_size(j['size'])} ({what})",
                         ours=f"{mmsg(j['msgs_per_s'])}, {j['gb_per_s']:.3f} GB/s", ref=ref, ratio=ratio))

    # ---- 3. Python
    m = missing(steps, "py_rtt_floors")
    if m:
        R.append(row(S3, "Python RTT p50, send + next(iter(bus)), 32 B, pure spin, minus pure-Python floor", ours=m,
                     target="<= 220 ns"))
    else:
        rr = res["py_rtt_floors"]
        sy, pairs = rr["systems"], rr["pairs"]
        c2c = sy.get("c2c", {})
        for name, label, tgt in (("tachyon_iter", "send + next(iter(bus))", True),
                                 ("tachyon_zc", "zero-copy guards (send_zero_copy / recv_zero_copy)", False),
                                 ("tachyon_drain", "send + drain_batch", False)):
            d, p = sy.get(name), pairs.get(f"{name}/pyshm")
            if not d or not p:
                R.append(row(S3, f"Python RTT, {label}", ours="no data"))
                continue
            diff = p["diff_median"]
            R.append(row(S3, f"Python RTT p50, {label}, 32 B, pure spin, against the pure-Python floor "
                             f"({p['rounds']} paired rounds x {rr['iters']})",
                         ours=f"p50 {ns(d['p50'])}, p99 {ns(d['p99'])}",
                         ref=f"floor p50 {ns(sy['pyshm']['p50'])} (C line p50 {ns(c2c.get('p50'))} in the same rounds)",
                         ratio=f"{p['ratio_median']:.2f}; ours - floor {diff:.0f} ns",
                         target="ours - floor <= 220 ns" if tgt else "-", met=(diff <= 220) if tgt else None,
                         note=placement_note(p.get("by_placement"), diff=True)))
    m = missing(steps, "py_rate")
    for sysname, label, tgt in (("tachyon", "Python producer (send_many, 256 x 64 B)", True),
                                ("tachyon_c", "C producer (c_producer.c, flush every 256)", False)):
        meas = f"one-way message rate, 64 B, {label}; consumer drain_batch + len(view), counted at the consumer"
        if m:
            R.append(row(S3, meas, ours=m, target=">= 10 M msg/s"))
            continue
        d = res["py_rate"]["systems"].get(sysname, {}).get("64")
        why = res["py_rate"]["skipped"].get(sysname)
        if not d or "error" in d:
            R.append(row(S3, meas, ours=f"not run: {why or (d or {}).get('error')}", target=">= 10 M msg/s"))
            continue
        rates = d["rates"]
        R.append(row(S3, meas + f" (median of {len(rates)} windows)", ours=mmsg(d["msgs_per_s"]),
                     ratio=f"windows {min(rates) / 1e6:.2f}..{max(rates) / 1e6:.2f} M",
                     target=">= 10 M msg/s" + ("" if tgt else " (Python-producer target, shown for reference)"),
                     met=(d["msgs_per_s"] >= 10e6) if tgt else None))
    m = missing(steps, "py_rtt_blocking")
    if m:
        R.append(row(S3, "blocked-consumer wake RTT / raw futex ping-pong", ours=m, target="<= 1.1"))
    else:
        rr = res["py_rtt_blocking"]
        d, f, p = rr["systems"].get("tachyon_sleep"), rr["systems"].get("futex"), rr["pairs"].get("tachyon_sleep/futex")
        if d and f and p:
            R.append(row(S3, f"blocked-consumer wake RTT (Python, drain_batch(spin_threshold=1)) / raw futex ping-pong "
                             f"(C, same processes) ({p['rounds']} paired rounds x {rr['slow_iters']})",
                         ours=f"p50 {ns(d['p50'])}, p99 {ns(d['p99'])}", ref=f"p50 {ns(f['p50'])}, p99 {ns(f['p99'])}",
                         ratio=f"{p['ratio_median']:.2f} (rounds {p['ratio_min']:.2f}..{p['ratio_max']:.2f})",
                         target="<= 1.1", met=p["ratio_median"] <= 1.1))
    m = missing(steps, "py_bandwidth")
    if m:
        R.append(row(S3, "bandwidth 1 MiB / memcpy 1 MiB", ours=m, target=">= 0.5"))
    else:
        b = res["py_bandwidth"]
        R.append(row(S3, f"bandwidth, 1 MiB messages, capacity 8 MiB: send() / recv_zero_copy + numpy sum, against "
                         f"memcpy 1 MiB in the same rounds ({b['rounds']} rounds)",
                     ours=gbs(b["bus_bytes_per_s"]), ref=gbs(b["memcpy_bytes_per_s"]),
                     ratio=f"{b['ratio_median']:.2f} (rounds {b['ratio_min']:.2f}..{b['ratio_max']:.2f})",
                     target=">= 0.5", met=b["ratio_median"] >= 0.5,
                     note=f"numpy sum alone over a hot 1 MiB buffer: {gbs(b['numpy_sum_bytes_per_s'])}; "
                          + placement_note({"ratio": b.get("by_placement", {}),
                                            "bus": b.get("bus_by_placement", {})}, bus=True)))
        if "vs_ring" in b:
            v = b["vs_ring"]
            R.append(row(S3, "bandwidth, same bus rounds, against a bare C ring of the same slots and capacity between "
                             "the same two processes (producer memcpy in, consumer reads every word; same rounds)",
                         ours=gbs(b["bus_bytes_per_s"]), ref=gbs(b["ring_bytes_per_s"]),
                         ratio=f"{v['ratio_median']:.2f} (rounds {v['ratio_min']:.2f}..{v['ratio_max']:.2f})",
                         note=placement_note({"ratio": C.by_placement(b["round_c2c_p50"], v["ratios"]),
                                              "bus": b.get("ring_by_placement", {})}, bus=True).replace(
                             ", bus ", ", bare ring ")))
    m = missing(steps, "py_dlpack")
    if m:
        R.append(row(S3, "DLPack hand-over 64 MiB / 64 B", ours=m, target="<= 1.2"))
    else:
        d = res["py_dlpack"]
        R.append(row(S3, f"DLPack hand-over (drain_batch return -> torch.from_dlpack return), 64 MiB / 64 B, "
                         f"capacity 256 MiB, same cache pollution before both ({d['rounds']} rounds x {d['per_round']})",
                     ours=f"p50 {ns(d['big_summary']['p50'])}", ref=f"p50 {ns(d['small_summary']['p50'])}",
                     ratio=f"{d['ratio_median']:.2f} (rounds {d['ratio_min']:.2f}..{d['ratio_max']:.2f})",
                     target="<= 1.2", met=d["ratio_median"] <= 1.2))
        v = d["vs_clean"]
        R.append(row(S3, "DLPack hand-over, 64 MiB / 64 B with no copy before the 64 B one (cache state differs)",
                     ours=f"p50 {ns(d['big_summary']['p50'])}", ref=f"p50 {ns(d['small_clean_summary']['p50'])}",
                     ratio=f"{v['ratio_median']:.2f}"))
    m = missing(steps, "py_handoff")
    for size in ("64", "65536"):
        for w in (1, 2, 4):
            meas = (f"receive here, process there, {fmt_size(int(size))}: recv_zero_copy + np.from_dlpack, "
                    f"{w} worker thread{'s' if w > 1 else ''} drop the arrays / the receiving thread drops them")
            if m:
                R.append(row(S3, meas, ours=m, target=">= 0.5"))
                continue
            h = res["py_handoff"]
            d = h["sizes"].get(size)
            if not d:
                R.append(row(S3, meas, ours="no data", target=">= 0.5"))
                continue
            q = d[f"w{w}_ratio_median"]
            R.append(row(S3, meas + f" ({h['rounds']} rounds, capacity {fmt_size(h['capacity'])})",
                         ours=f"{d[f'w{w}_msgs_per_s'] / 1e3:.0f} k msg/s", ref=f"{d['here_msgs_per_s'] / 1e3:.0f} k msg/s",
                         ratio=f"{q:.2f} (rounds {d[f'w{w}_ratio_min']:.2f}..{d[f'w{w}_ratio_max']:.2f})",
                         target=">= 0.5", met=q >= 0.5))
    m = missing(steps, "py_arrays")
    for case, label in (("frame_1080p_uint8", "1920x1080x3 uint8 frame"),
                        ("tensor_4096_float32", "4096x4096 float32 tensor")):
        for ref, rlabel, t in (("shm_queue", "shared_memory pool + Queues of indices", 1), ("pipe", "mp.Pipe", 5)):
            meas = f"arrays, {label}: send_array / recv_zero_copy + .array() + reduction, against {rlabel}"
            if m:
                R.append(row(S3, meas, ours=m, target=f">= {t}"))
                continue
            ar = res["py_arrays"]
            d = ar["cases"].get(case)
            if not d:
                R.append(row(S3, meas, ours="no data", target=f">= {t}"))
                continue
            o, f, q = d["methods"]["tachyon"], d["methods"][ref], d[f"tachyon_over_{ref}"]
            lines = ar["program_lines"]
            R.append(row(S3, meas + f" ({ar['rounds']} rounds, .{ar['reduction']}(), {d['slots']} frames in flight)",
                         ours=f"{o['frames_per_s']:.0f} frames/s, {o['gb_per_s']:.2f} GB/s",
                         ref=f"{f['frames_per_s']:.0f} frames/s, {f['gb_per_s']:.2f} GB/s",
                         ratio=f"{q['median']:.2f} (rounds {q['min']:.2f}..{q['max']:.2f})", target=f">= {t}",
                         met=q["median"] >= t,
                         note="program lines, producer + consumer: " + ", ".join(
                             f"{k} {v['producer']} + {v['consumer']}" for k, v in lines.items())))
    m = missing(steps, "py_observer")
    meas = "ping-pong p50 while `python -m tachyon top` watches / alone (32 B, hybrid waits)"
    if m:
        R.append(row(S3, meas, ours=m, target="< 1.05"))
    else:
        d = res["py_observer"]
        R.append(row(S3, f"{meas}, top as {d['view']}, {d['rounds']} paired rounds",
                     ours=f"p50 {statistics.median(d['p50_watched_us']):.2f} us",
                     ref=f"p50 {statistics.median(d['p50_alone_us']):.2f} us",
                     ratio=f"{d['ratio']:.3f} (rounds {min(d['ratios']):.2f}..{max(d['ratios']):.2f})",
                     target="< 1.05", met=d["ratio"] < 1.05))
    m = missing(steps, "syscalls")
    for sc, label in (("rtt", "ping-pong (send + next(iter(bus)))"), ("stream", "streaming (send_many / drain_batch)")):
        meas = f"hot-path system calls per message, both sides awake, {label} (strace -c -f)"
        if m:
            R.append(row(S3, meas, ours=m, target="0"))
            continue
        s = res["syscalls"]["scenarios"].get(sc, {})
        if "error" in s or not s:
            R.append(row(S3, meas, ours=f"not run: {s.get('error')}", target="0"))
            continue
        calls = ", ".join(f"{k} {v}" for k, v in sorted(s["calls"].items(), key=lambda kv: -kv[1])) or "none"
        per = s["per_message"]
        R.append(row(S3, meas, ours=f"{per:.1e} ({s['syscalls']} calls in {s['messages']:,} messages)",
                     ratio=calls, target="0 per message", met=per < 1e-3,
                     note="met = fewer than 1 call per 1000 messages: what remains is periodic (peer-liveness poll, "
                          "a producer sleeping on a full ring), not per message"))

    # ---- 4. peers
    m = missing(steps, "py_rtt_peers")
    targets = {"mp_pipe": 25, "pyzmq_ipc": 50, "faster_fifo": 10, "iceoryx2": 3}
    labels = {"mp_pipe": "multiprocessing.Pipe", "mp_queue": "multiprocessing.Queue", "pyzmq_ipc": "pyzmq (ipc://)",
              "faster_fifo": "faster-fifo", "iceoryx2": "iceoryx2", "posix_ipc": "posix_ipc message queue"}
    for peer, label in labels.items():
        t = targets.get(peer)
        tgt = f">= {t}" if t else "-"
        if m:
            R.append(row(S4, f"{label} / ours", ours=m, target=tgt))
            continue
        rr = res["py_rtt_peers"]
        if peer in rr["skipped"]:
            R.append(row(S4, f"{label} / ours", ref=f"not run: {rr['skipped'][peer]}", target=tgt))
            continue
        d, o, p = rr["systems"].get(peer), rr["systems"].get("tachyon_iter"), rr["pairs"].get(f"{peer}/tachyon_iter")
        if not (d and o and p):
            R.append(row(S4, f"{label} / ours", ref="no data", target=tgt))
            continue
        R.append(row(S4, f"{label} RTT p50 / ours (send + next(iter), pure spin) ({p['rounds']} paired rounds x "
                         f"{rr['slow_iters']} / {rr['iters']})",
                     ours=f"p50 {ns(o['p50'])}, p99 {ns(o['p99'])}", ref=f"p50 {ns(d['p50'])}, p99 {ns(d['p99'])}",
                     ratio=f"{p['ratio_median']:.1f} (rounds {p['ratio_min']:.1f}..{p['ratio_max']:.1f})", target=tgt,
                     met=(p["ratio_median"] >= t) if t else None))

    # ---- 5. per call
    if not missing(steps, "percall"):
        pc = res["percall"]["ns"]
        for k in ("send(32 B)", "next(iter(bus)) -> Message", "baseline: mmap byte write + read/compare",
                  "drain_batch(1024) iterating views + len(view), per message", "send_many(256 x 64 B), per message",
                  "send_zero_copy + memoryview write + actual_size", "recv_zero_copy + memoryview read"):
            if k in pc:
                R.append(row(S5, f"{k} (one process, best of 15 blocks)", ours=f"{pc[k]:.0f} ns"))
    if not missing(steps, "profile"):
        for label, d in list(res["profile"]["entries"].items())[:9]:
            R.append(row(S5, f"{label} (callgrind)", ours=f"{d['instructions_per_call']:.0f} instructions"))

    # ---- 6. across hosts (loopback TCP, one run)
    S6 = "6. Across hosts, tcp:// against raw pyzmq (loopback, one run)"
    m = missing(steps, "py_net")
    if m:
        R.append(row(S6, "tcp bus against raw pyzmq", ref=m))
    else:
        rn = res["py_net"]
        rt = rn["round_trip_32B_us"]
        R.append(row(S6, "round trip 32 B, median: raw DEALER/ROUTER / ours (two tcp buses)",
                     ours=f"{rt['tachyon']:.0f} us", ref=f"{rt['dealer_router']:.0f} us",
                     ratio=f"{rt['dealer_router'] / rt['tachyon']:.2f}", target=">= 0.77 (ours <= 1.3x)",
                     met=rt["tachyon"] <= 1.3 * rt["dealer_router"]))
        for r in rn["throughput"]:
            t = 0.9 if r["size"] >= 65536 else 0.5
            R.append(row(S6, f"one-way {fmt_size(r['size'])}: ours / raw DEALER/ROUTER, PUSH/PULL",
                         ours=mmsg(r["tachyon_msgs_per_s"]),
                         ref=f"{mmsg(r['dealer_router_msgs_per_s'])}, {mmsg(r['push_pull_msgs_per_s'])}",
                         ratio=f"{r['ratio_dealer_router']:.2f}, {r['ratio_push_pull']:.2f}",
                         target=f">= {t}", met=min(r["ratio_dealer_router"], r["ratio_push_pull"]) >= t))
    return R


def placement_note(bp, diff=False, bus=False):
    """'fast placement (C line p50 < 300 ns), 12 rounds: ...; slow ...' or ''."""
    if not bp or not bp.get("ratio"):
        return ""
    parts = []
    for pl, d in bp["ratio"].items():
        extra = ""
        if diff and pl in bp.get("diff", {}):
            extra = f", ours - floor {bp['diff'][pl]['median']:.0f} ns"
        if bus and pl in bp.get("bus", {}):
            extra = f", bus {gbs(bp['bus'][pl]['median'])}"
        parts.append(f"{pl} placement (C line p50 {'<' if pl == 'fast' else '>='} {C.PLACEMENT_SPLIT_NS} ns), "
                     f"{d['rounds']} rounds: ratio {d['median']:.2f}{extra}")
    return "; ".join(parts)


def fmt_size(n):
    if n >= 1 << 20:
        return f"{n >> 20} MiB"
    if n >= 1 << 10:
        return f"{n >> 10} KiB"
    return f"{n} B"


def md_escape(s):
    return str(s).replace("|", "\\|")


def write_markdown(a, rows, steps, info, t_total):
    out = []
    out.append("# tachyon benchmark results\n")
    out.append(f"{info['date_utc']} UTC, `python3 benchmarks/run_all.py{' --quick' if a.quick else ''}` "
               f"({info['mode']} run, {int(t_total // 60)} min {t_total % 60:.0f} s), CPUs {a.cpus}. "
               f"{info['lscpu'].get('Model name', '?')}, {info['lscpu'].get('CPU(s)', '?')} vCPUs "
               f"({info['lscpu'].get('Hypervisor vendor', 'bare metal')}), {info['uname']}, Python "
               f"{platform.python_version()}; details in [machine.txt](machine.txt).\n")
    if info.get("extension_changed"):
        out.append("**Warning: the tachyon extension was rebuilt during this run** (sha256 "
                   f"{(info['extension_changed']['start'] or {}).get('sha256_16')} at the start, "
                   f"{(info['extension_changed']['end'] or {}).get('sha256_16')} at the end): the steps mix two "
                   "builds.\n")
    busy = info.get("busy_at_start") or {}
    if busy.get("busy_processes") or (busy.get("loadavg_1min") or 0) > 0.5:
        out.append(f"**Warning: the machine was not idle at the start** (load {busy.get('loadavg_1min')}; "
                   f"{', '.join(busy.get('busy_processes') or []) or 'no single busy process'}): the numbers "
                   "are skewed.\n")
    ext = info.get("extension") or {}
    out.append(f"Extension binary sha256 {ext.get('sha256_16')} (built {ext.get('mtime')}); git "
               f"{info['git']['head'][:12]} with {info['git']['changed_files']} changed or untracked files.\n")
    out.append("Every ratio is the median of per-round ratios: the floor (or peer) and ours alternate in short rounds "
               "in the same two pinned processes, so a change of vCPU placement hits both alike. p50/p99 are over "
               "all samples of all rounds.\n")
    sec = None
    out.append("| measure | ours | reference | ratio | target | met? |")
    out.append("|---|---|---|---|---|---|")
    for r in rows:
        if r["section"] != sec:
            sec = r["section"]
            out.append(f"| **{sec}** | | | | | |")
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        meas = r["measure"] + (f" <br>*{r['note']}*" if r["note"] else "")
        out.append(f"| {md_escape(meas)} | {md_escape(r['ours'])} | {md_escape(r['reference'])} | "
                   f"{md_escape(r['ratio'])} | {md_escape(r['target'])} | {met} |")
    out.append("")
    out.append("![latency CDF](latency_cdf.png)\n")
    out.append("![throughput against message size](throughput.png)\n")
    # throughput table
    thr = steps.get("py_throughput")
    if thr and thr.status == "ok":
        sizes = sorted({int(s) for rows_ in thr.result["systems"].values() for s in rows_})
        out.append("## Throughput from Python (one-way, counted at the consumer)\n")
        out.append("| system | " + " | ".join(fmt_size(s) for s in sizes) + " |")
        out.append("|---|" + "---|" * len(sizes))
        for system, rows_ in thr.result["systems"].items():
            cells = []
            for s in sizes:
                d = rows_.get(str(s), {})
                cells.append("-" if "error" in d or not d else f"{d['msgs_per_s'] / 1e6:.3g} M/s, "
                                                               f"{d['bytes_per_s'] / 1e9:.3g} GB/s")
            out.append(f"| {system} | " + " | ".join(cells) + " |")
        for system, why in thr.result.get("skipped", {}).items():
            out.append(f"\n{system}: not run: {why}")
        out.append("")
    # per-call
    pc = steps.get("percall")
    if pc and pc.status == "ok":
        out.append("## Per-call cost from Python (one process, both ends; best and median of 15 blocks)\n")
        out.append("| call | best | median |")
        out.append("|---|---|---|")
        for k, v in pc.result["ns"].items():
            out.append(f"| {md_escape(k)} | {v:.0f} ns | {pc.result['ns_median'][k]:.0f} ns |")
        out.append("")
    pr = steps.get("profile")
    if pr and pr.status == "ok":
        out.append("## Instructions per call (valgrind callgrind, inclusive)\n")
        out.append("| call | instructions | main callees (instructions per call) |")
        out.append("|---|---|---|")
        bd = pr.result["breakdown"]
        for label, d in pr.result["entries"].items():
            inner = {"BusIter_next": "tx_bus_recv_message", "Bus_send_zero_copy": "zero_copy_send",
                     "Bus_recv_zero_copy": "zero_copy_recv"}.get(d["function"])
            kids = (bd.get(d["function"]) or bd.get(inner) or {}).get("callees", {})
            if list(kids) == [inner] and inner in bd:
                kids = bd[inner].get("callees", {})
            ks = ", ".join(f"{k} {v:.0f}" for k, v in list(kids.items())[:5] if v >= 5)
            out.append(f"| {md_escape(label)} | {d['instructions_per_call']:.0f} | {md_escape(ks)} |")
        for fn in ("tachyon_bus_send", "tx_family_enter", "tx_message_new", "RxBatch_item"):
            if fn in bd:
                ks = ", ".join(f"{k} {v:.0f}" for k, v in bd[fn]["callees"].items() if v >= 5)
                out.append(f"| (inside) {fn} | {bd[fn]['instructions']:.0f} | {md_escape(ks)} |")
        out.append("")
    out.append("## Steps\n")
    out.append("| step | status | seconds |")
    out.append("|---|---|---|")
    for s in steps.values():
        out.append(f"| {s.key}: {md_escape(s.title)} | {md_escape(s.status + (': ' + s.error if s.error else ''))} | "
                   f"{s.seconds:.1f} |")
    out.append("")
    peers = ("pyzmq", "faster-fifo", "iceoryx2", "posix_ipc")
    out.append("Peers installed: " + ", ".join(
        f"{p} {info['packages'].get(p) or 'NOT INSTALLED'}" + (f" ({info['installers'].get(p)})"
                                                              if info['installers'].get(p) else "") for p in peers)
               + "; multiprocessing from the standard library.\n")
    (a.out / "results.md").write_text("\n".join(out))


# --------------------------------------------------------------------------
# plots


def plot(a, steps):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        return f"matplotlib unavailable: {e}"
    notes = []
    from cycler import cycler

    colors = [plt.cm.tab20(i) for i in (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)]
    plt.rcParams["axes.prop_cycle"] = cycler(color=colors)
    # ---- latency CDF
    fig, ax = plt.subplots(figsize=(14, 6.5))
    styles = {"floor": dict(ls="--", lw=1.6), "ours": dict(ls="-", lw=2.2), "peer": dict(ls="-", lw=1.3)}
    any_line = False
    for key in ("py_rtt_floors", "py_rtt_blocking", "py_rtt_peers"):
        st = steps.get(key)
        if not st or st.status != "ok":
            continue
        for name, d in st.result["systems"].items():
            if key == "py_rtt_peers" and name == "tachyon_iter":
                continue  # the same system as in the floors set
            xs, ps = d.get("cdf_ns"), st.result.get("cdf_p")
            if not xs or not ps:
                continue
            ax.plot(xs, ps, label=f"{d['label']} (p50 {ns(d['p50'])})", **styles.get(d["kind"], {}))
            any_line = True
    for key, lab in (("c_pingpong", "C"), ("c_pingpong_sleep", "C sleeping")):
        st = steps.get(key)
        if not st or st.status != "ok" or not st.result:
            continue
        j = st.result[0]
        for which, name, mk in (("tachyon_ns", f"{lab}: tachyon (pingpong)", "o"),
                                ("floor_ns", f"{lab}: {j.get('floor_kind', 'floor')} floor (pingpong)", "s")):
            q = j[which]
            xs = [q["p50"], q["p90"], q["p99"], q["p99_9"]]
            ax.plot(xs, [0.5, 0.9, 0.99, 0.999], marker=mk, ls=":", lw=1,
                    label=f"{name}, percentiles only (p50 {ns(q['p50'])})")
            any_line = True
    if any_line:
        ax.set_xscale("log")
        ax.set_xlabel("round trip (ns, log scale)")
        ax.set_ylabel("fraction of round trips <= x")
        ax.set_ylim(0, 1.0)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"Round-trip latency, 32 B, two processes pinned to CPUs {a.cpus}")
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.tight_layout()
        fig.savefig(a.out / "latency_cdf.png", dpi=110)
    else:
        notes.append("latency_cdf.png: no latency data")
    plt.close(fig)

    # ---- throughput
    fig, (axb, axm) = plt.subplots(1, 2, figsize=(15, 6.8))
    names = {"tachyon": "tachyon, Python producer (send_many)", "tachyon_c": "tachyon, C producer",
             "mp_pipe": "multiprocessing.Pipe", "mp_queue": "multiprocessing.Queue", "pyzmq_ipc": "pyzmq PUSH/PULL ipc",
             "faster_fifo": "faster-fifo", "posix_ipc": "posix_ipc", "iceoryx2": "iceoryx2"}
    any_line = False
    st = steps.get("py_throughput")
    if st and st.status == "ok":
        for system, rows_ in st.result["systems"].items():
            pts = sorted((int(s), d) for s, d in rows_.items() if "error" not in d)
            if not pts:
                continue
            xs = [s for s, _ in pts]
            kw = dict(lw=2.2) if system.startswith("tachyon") else dict(lw=1.2)
            axb.plot(xs, [d["bytes_per_s"] / 1e9 for _, d in pts], marker="o", label=f"Python: {names[system]}", **kw)
            axm.plot(xs, [d["msgs_per_s"] for _, d in pts], marker="o", label=f"Python: {names[system]}", **kw)
            any_line = True
    for key, lab in (("c_stream", "C: tachyon, send per message"), ("c_stream_batch", "C: tachyon, batch 256, pure spin")):
        st = steps.get(key)
        if not st or st.status != "ok" or not st.result:
            continue
        pts = sorted((j["size"], j) for j in st.result)
        axb.plot([s for s, _ in pts], [j["gb_per_s"] for _, j in pts], marker="s", ls="--", label=lab)
        axm.plot([s for s, _ in pts], [j["msgs_per_s"] for _, j in pts], marker="s", ls="--", label=lab)
        any_line = True
    st = steps.get("c_floors")
    if st and st.status == "ok":
        mc = sorted((j["size"], j["gb_per_s"]) for j in st.result if j.get("bench") == "floor_memcpy")
        if mc:
            axb.plot([s for s, _ in mc], [g for _, g in mc], "kx-", lw=1, label="memcpy, one thread (C floors)")
    st = steps.get("py_bandwidth")
    if st and st.status == "ok":
        b = st.result
        axb.plot([b["size"]], [b["bus_bytes_per_s"] / 1e9], marker="*", ms=16, ls="none", color="black",
                 label="Python: send / recv_zero_copy + numpy sum (bandwidth.py)")
    if any_line:
        for ax_, yl in ((axb, "payload GB/s"), (axm, "messages/s")):
            ax_.set_xscale("log", base=2)
            ax_.set_yscale("log")
            ax_.set_xlabel("message size (bytes)")
            ax_.set_ylabel(yl)
            ax_.grid(True, which="both", alpha=0.3)
        axb.set_title("throughput (one-way, counted at the consumer)")
        axm.set_title(f"message rate, CPUs {a.cpus}")
        fig.tight_layout(rect=(0, 0.11, 1, 1))
        fig.legend(*axb.get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=4, frameon=False)
        fig.savefig(a.out / "throughput.png", dpi=110)
    else:
        notes.append("throughput.png: no throughput data")
    plt.close(fig)
    return "; ".join(notes) or "ok"


# --------------------------------------------------------------------------


def replot(a):
    d = json.loads((a.replot / "results.json").read_text())
    a.out, a.quick, a.cpus = a.replot.resolve(), d["mode"] == "quick", d["cpus"]
    steps = {}
    for k, v in d["steps"].items():
        st = Step(k, v["title"], v["command"])
        st.status, st.error, st.seconds, st.result = v["status"], v["error"], v["seconds"], v["result"]
        steps[k] = st
    rows = build_rows(steps, a)
    note = plot(a, steps)
    write_markdown(a, rows, steps, d["machine"], d["seconds"])
    d["rows"], d["plots"] = rows, note
    (a.out / "results.json").write_text(json.dumps(d, indent=1, default=str))
    print(f"rewrote {a.out / 'results.md'} and the plots ({note})")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and sizes (~2 minutes)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/<timestamp>)")
    p.add_argument("--rounds", type=int, default=None, help="paired rounds of every paired benchmark")
    p.add_argument("--cpus", default="0,1", help="the two CPUs (default 0,1)")
    p.add_argument("--only", default="", help="comma-separated step keys to run (others are skipped)")
    p.add_argument("--skip", default="", help="comma-separated step keys to skip")
    p.add_argument("--replot", type=Path, metavar="DIR",
                   help="only rewrite results.md and the plots of DIR from its results.json")
    p.add_argument("--no-snapshot", action="store_true",
                   help="run the live tachyon package and build/bench tools instead of a private copy")
    a = p.parse_args(argv)
    if a.replot:
        return replot(a)
    if a.rounds is not None and a.rounds < 10:
        print("note: fewer than 10 paired rounds makes the medians fragile on this VM", file=sys.stderr)
    a.out = (a.out or HERE / "results" / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")).resolve()
    (a.out / "logs").mkdir(parents=True, exist_ok=True)
    (a.out / "raw").mkdir(exist_ok=True)
    only = {x for x in a.only.split(",") if x}
    skip = {x for x in a.skip.split(",") if x} - {"build"}  # the build step also takes the snapshot
    all_steps = make_steps(a)
    run_steps = [s for s in all_steps if (not only or s.key in only or s.key == "build") and s.key not in skip
                 and not (s.full_only and a.quick)]
    t_start = time.monotonic()
    print(f"tachyon benchmarks ({'quick' if a.quick else 'full'}), CPUs {a.cpus}, results in {a.out}", flush=True)
    busy = busy_check()
    if busy["busy_processes"] or (busy["loadavg_1min"] or 0) > 0.5:
        print(f"WARNING: the machine is not idle (load {busy['loadavg_1min']}; "
              f"{', '.join(busy['busy_processes']) or 'no single busy process'}): expect skewed numbers",
              file=sys.stderr, flush=True)
    prog = Progress(len(run_steps), t_start)
    steps = {}
    env, snap = None, None
    for i, st in enumerate(run_steps, 1):
        steps[st.key] = st
        prog.start(i, st)
        t0 = time.monotonic()
        if st.kind == "build":
            notes = do_build(a, a.out / "logs")
            st.result, st.status, st.seconds = notes, "ok", time.monotonic() - t0
            bad = {k: v for k, v in notes.items() if v != "ok"}
            prog.finish(i, st, t0, "ok" if not bad else "; ".join(f"{k}: {v}" for k, v in bad.items()))
            snap = None if a.no_snapshot else snapshot(a)
            if snap:
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                    [str(snap)] + [x for x in os.environ.get("PYTHONPATH", "").split(os.pathsep) if x]))
                sys.path.insert(0, str(snap))
                fresh = {x.key: x for x in make_steps(a, snap / "bench")}
                for x in run_steps[i:]:
                    x.cmd = fresh[x.key].cmd
            info, lscpu = machine_info(a)
            info["snapshot"] = str(snap) if snap else None
            info["busy_at_start"] = busy
            write_machine(a, info, lscpu)
            continue
        if st.kind == "c" and not Path(st.cmd[0]).exists():
            st.status = "not built"
            st.error = f"{Path(st.cmd[0]).name} is missing (make -C benchmarks)"
            prog.finish(i, st, t0, "not built")
            continue
        rc, st.seconds = run_process(st, i, prog, a.out / "logs", env)
        if rc == "timeout":
            st.status, st.error = "timeout", f"killed after {st.timeout} s"
        elif rc != 0:
            st.status, st.error = "failed", f"exit {rc}: {last_line(a.out / 'logs' / f'{st.key}.err')}"
        else:
            try:
                if st.kind == "c":
                    st.result = parse_json_lines(a.out / "logs" / f"{st.key}.out")
                    if not st.result:
                        raise ValueError("no JSON lines in its output")
                else:
                    st.result = json.loads((a.out / "raw" / f"{st.key}.json").read_text())
                st.status = "ok"
            except Exception as e:
                st.status, st.error = "failed", f"unreadable result: {e}"
        prog.finish(i, st, t0, st.status + (f" ({st.error})" if st.error else ""))
    t_total = time.monotonic() - t_start
    ext_end = extension_id()
    if ext_end != info["extension"]:
        info["extension_changed"] = {"start": info["extension"], "end": ext_end}
        print("\nWARNING: the tachyon extension was rebuilt during this run; its steps mix two builds",
              file=sys.stderr)
    rows = build_rows(steps, a)
    plot_note = plot(a, steps)
    write_markdown(a, rows, steps, info, t_total)
    (a.out / "results.json").write_text(json.dumps({
        "machine": info, "seconds": t_total, "mode": "quick" if a.quick else "full", "cpus": a.cpus,
        "steps": {k: {"title": s.title, "status": s.status, "error": s.error, "seconds": s.seconds,
                      "command": [str(x) for x in s.cmd] if s.cmd else None, "result": s.result}
                  for k, s in steps.items()},
        "rows": rows, "plots": plot_note}, indent=1, default=str))
    shutil.rmtree(a.out / "raw", ignore_errors=True)  # every step's JSON is in results.json now
    if snap:
        shutil.rmtree(snap, ignore_errors=True)
    met = [r for r in rows if r["met"] is not None]
    print(f"\ndone in {int(t_total // 60)}:{t_total % 60:04.1f}: {sum(1 for r in met if r['met'])}/{len(met)} targets met; "
          f"{a.out / 'results.md'}" + ("" if plot_note == "ok" else f" ({plot_note})"))
    for r in met:
        print(f"  {'met ' if r['met'] else 'MISS'}  {r['measure'][:90]}: {r['ratio']} (target {r['target']})")
    return 0 if all(s.status in ("ok", "not built") for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
