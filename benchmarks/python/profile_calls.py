"""Instructions per call of the extension's hot paths (valgrind callgrind).

    python3 benchmarks/python/profile_calls.py [--json PATH] [--keep DIR]

`perf stat` has no hardware counters on this VM ("<not supported>"), so the
profile is callgrind's instruction count: exact, repeatable, blind to cache
misses (cross-core misses are what rtt.py measures). One process, both ends
of one bus (listen in a thread, connect in the main thread), a fixed number
of calls of each kind; every figure is inclusive instructions per call,
with the callees that cost most.

Workloads (all 32 B unless said):
  send + next(iter(bus))              N pairs
  send_many(256 x 64 B) + drain_batch(1024) iterating views + len(view)
  send_zero_copy/memoryview/actual_size + recv_zero_copy/memoryview
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

N_PAIRS = 20000
N_BATCH_MSGS = 20480  # 20 batches of 1024
N_ZC = 5000

# (label, function, calls it is divided by)
ENTRIES = [
    ("send(32 B): Bus_send", "Bus_send", N_PAIRS),
    ("next(iter(bus)): BusIter_next", "BusIter_next", N_PAIRS),
    ("send_many, per message: Bus_send_many", "Bus_send_many", N_BATCH_MSGS),
    ("drain_batch, per message: Bus_drain_batch", "Bus_drain_batch", N_BATCH_MSGS),
    ("view creation (batch[i] / iteration): RxBatch_item", "RxBatch_item", N_BATCH_MSGS),
    ("len(view): RxView_len", "RxView_len", N_BATCH_MSGS),
    ("view deallocation: RxView_dealloc", "RxView_dealloc", N_BATCH_MSGS),
    ("batch __exit__, per message: RxBatch_exit", "RxBatch_exit", N_BATCH_MSGS),
    ("send_zero_copy(): Bus_send_zero_copy", "Bus_send_zero_copy", N_ZC),
    ("TxGuard.__exit__ (commit + flush)", "TxGuard_exit", N_ZC),
    ("TxGuard buffer export", "TxGuard_getbuffer", N_ZC),
    ("TxGuard.actual_size = n", "TxGuard_set_actual_size", N_ZC),
    ("recv_zero_copy(): Bus_recv_zero_copy", "Bus_recv_zero_copy", N_ZC),
    ("RxGuard.__exit__", "RxGuard_exit", N_ZC),
    ("RxGuard buffer export", "RxGuard_getbuffer", N_ZC),
    ("RxGuard deallocation", "RxGuard_dealloc", N_ZC),
    ("TxGuard deallocation", "TxGuard_dealloc", N_ZC),
]
# (function, divisor, unit): divisor None = the function's own call count
BREAKDOWN = [("Bus_send", None, "call"), ("recv_message", None, "call"),
             ("Bus_send_many", N_BATCH_MSGS, "message"), ("Bus_drain_batch", N_BATCH_MSGS, "message"),
             ("tachyon_bus_send", None, "call"), ("tx_message_new", None, "call"),
             ("RxBatch_item", None, "call"), ("RxBatch_exit", N_BATCH_MSGS, "message"),
             ("Bus_send_zero_copy", None, "call"), ("zero_copy_send", None, "call"),
             ("zero_copy_recv", None, "call"), ("recv_first", None, "call"), ("TxGuard_exit", None, "call"),
             ("RxGuard_exit", None, "call")]


def workload():
    """Runs under callgrind (python3 profile_calls.py --workload)."""
    import threading

    import tachyon

    path = C.sock_path("profile")
    out = {}

    def srv():
        out["c"] = tachyon.Bus.listen(path, 1 << 20, timeout=30, role="consumer")

    t = threading.Thread(target=srv)
    t.start()
    prod = tachyon.Bus.connect(path, timeout=30, role="producer")
    t.join()
    cons = out["c"]
    p32 = bytes(32)
    send, it = prod.send, iter(cons)
    for _ in range(N_PAIRS // 500):
        for _ in range(500):
            send(p32)
        for _ in range(500):
            next(it)
    many = [bytes(64)] * 256
    drain = cons.drain_batch
    for _ in range(N_BATCH_MSGS // 1024):
        for _ in range(4):
            prod.send_many(many)
        with drain(1024) as b:
            for v in b:
                len(v)
    szc, rzc = prod.send_zero_copy, cons.recv_zero_copy
    for _ in range(N_ZC // 500):
        for _ in range(500):
            with szc(32) as g:
                with memoryview(g) as mv:
                    mv[:] = p32
                g.actual_size = 32
        for _ in range(500):
            with rzc() as r:
                with memoryview(r) as mv:
                    mv[0]
    prod.close()
    cons.close()


_LINE = re.compile(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+([*>< ])?\s*(\S+?):(\S+?)(?:'\d+)?(?: \(([\d,]+)x\))?(?: \[.*\])?\s*$")


_LTO_SUFFIX = re.compile(r"\.(lto_priv|part|constprop|isra)\.\d+$")


def parse_tree(text):
    """callgrind_annotate --tree=calling --inclusive=yes: {fn: incl}, {fn: {callee: (incl, calls)}}."""
    incl, callees, calls = {}, {}, {}
    cur = None
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            if not line.strip():
                cur = None
            continue
        cost = int(m.group(1).replace(",", ""))
        # Link-time optimisation renames file-static functions it clones or
        # localises ("Bus_send.lto_priv.0"): count them under their own names.
        mark, fn, n = m.group(2), _LTO_SUFFIX.sub("", m.group(4)), m.group(5)
        if mark == "*":
            cur = fn
            incl[fn] = max(incl.get(fn, 0), cost)
        elif mark == ">" and cur is not None:
            k = int(n.replace(",", "")) if n else 0
            prev = callees.setdefault(cur, {}).get(fn, (0, 0))
            callees[cur][fn] = (max(prev[0], cost), max(prev[1], k))
    for fn, cs in callees.items():
        for callee, (_, k) in cs.items():
            calls[callee] = calls.get(callee, 0) + k
    return incl, callees, calls


def profile(keep=None):
    vg, ca = shutil.which("valgrind"), shutil.which("callgrind_annotate")
    if not vg or not ca:
        raise RuntimeError("valgrind / callgrind_annotate not installed (apt-get install -y valgrind)")
    tmp = tempfile.mkdtemp(prefix="tbench-cg-")
    try:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run([vg, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                        os.path.abspath(__file__), "--workload"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        text = subprocess.run([ca, "--tree=calling", "--inclusive=yes", "--threshold=100", out], check=True,
                              capture_output=True, text=True).stdout
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(out, os.path.join(keep, "callgrind.out"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    incl, callees, calls = parse_tree(text)
    res = {"entries": {}, "breakdown": {}}
    for label, fn, n in ENTRIES:
        if fn in incl:
            res["entries"][label] = {"function": fn, "instructions_per_call": incl[fn] / n, "calls": calls.get(fn)}
    for fn, div, unit in BREAKDOWN:
        k = div or calls.get(fn)
        if fn not in incl or not k:
            continue
        kids = sorted(callees.get(fn, {}).items(), key=lambda kv: -kv[1][0])
        res["breakdown"][fn] = {
            "per": unit,
            "instructions": incl[fn] / k,
            "calls": calls.get(fn),
            "callees": {c: v[0] / k for c, v in kids[:8]},
        }
    return res


def print_result(res):
    print("instructions per call (callgrind, inclusive; one process, no waiting)")
    for label, d in res["entries"].items():
        print(f"  {label:58s} {d['instructions_per_call']:8.0f}")
    for fn, d in res["breakdown"].items():
        print(f"{fn}: {d['instructions']:.0f} instructions per {d['per']}, of which (callees, inclusive)")
        for c, v in d["callees"].items():
            print(f"    {c:40s} {v:8.0f}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--workload"]:
        workload()
        return 0
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--keep", metavar="DIR", help="keep callgrind.out in DIR")
    args = p.parse_args(argv)
    res = profile(args.keep)
    res["benchmark"] = "profile"
    print_result(res)
    C.write_json(args, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
