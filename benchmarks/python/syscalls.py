"""System calls per message on the hot path, both sides awake (strace -c).

    python3 benchmarks/python/syscalls.py [--seconds 1.0] [--cpus 0,1] [--json PATH]

Two workers (A on the first CPU, B on the second) keep a bus busy without
pause; this process only orchestrates and is not traced. Scenarios:

  rtt     ping-pong, send + next(iter(bus)) both ways, 32 B, pure spin
  stream  B: send_many(256 x 64 B); A: drain_batch + len(view), pure spin

Once both workers run, `strace -c -f -p A -p B` attaches; then a flag in
shared memory (read without a system call) opens the counting window for
--seconds, closes it, and only then is strace stopped. Messages are counted
inside the window only, system calls over the whole traced time, so the
per-message figure can only be too high, never too low.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

# flag byte 0: 0 warm-up, 1 counting, 2 stopped counting, 3 finish
# bytes 8..16: A's message count (little-endian)


def _worker(role, scenario, paths, page_name, cpu, ready):
    C.pin(cpu)
    page = C.SharedPage(page_name, create=False)
    m = page.map
    try:
        import tachyon

        payload = bytes(32 if scenario == "rtt" else 64)
        if role == "A":
            if scenario == "rtt":
                tx = tachyon.Bus.listen(paths[0], 1 << 16, timeout=30, role="producer")
                rx = tachyon.Bus.listen(paths[1], 1 << 16, timeout=30, role="consumer")
            else:
                tx = None
                rx = tachyon.Bus.listen(paths[0], 8 << 20, timeout=30, role="consumer")
            rx.set_polling_mode(1)
            ready.send("ok")
            count = 0
            if scenario == "rtt":
                send, it = tx.send, iter(rx)
                while True:
                    for _ in range(64):
                        send(payload)
                        next(it)
                    f = m[0]
                    if f == 1:
                        count += 128  # messages: 64 each way
                    elif f == 3:
                        break
            else:
                drain = rx.drain_batch
                while True:
                    with drain() as b:
                        for v in b:
                            len(v)
                        k = len(b)
                    f = m[0]
                    if f == 1:
                        count += k
                    elif f == 3:
                        break
            m[8:16] = count.to_bytes(8, "little")
            for b in (tx, rx):
                if b is not None:
                    b.close()
        else:
            if scenario == "rtt":
                rx = tachyon.Bus.connect(paths[0], timeout=30, role="consumer")
                tx = tachyon.Bus.connect(paths[1], timeout=30, role="producer")
                rx.set_polling_mode(1)
            else:
                rx = None
                tx = tachyon.Bus.connect(paths[0], timeout=30, role="producer")
            ready.send("ok")
            try:
                if scenario == "rtt":
                    send, it = tx.send, iter(rx)
                    for msg in it:
                        send(msg.data)
                else:
                    batch = [payload] * 256
                    while True:
                        tx.send_many(batch, timeout=None)
            except (tachyon.PeerClosedError, tachyon.PeerDeadError, tachyon.BusClosedError, StopIteration):
                pass
            for b in (tx, rx):
                if b is not None:
                    b.close()
    except BaseException:
        try:
            ready.send("error: " + traceback.format_exc())
        except Exception:
            pass
        raise
    finally:
        del m
        page.close()


_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\S+)\s*$")


def parse_strace_c(text):
    calls = {}
    for line in text.splitlines():
        mm = _ROW.match(line)
        if mm and mm.group(3) != "total":
            calls[mm.group(3)] = int(mm.group(1))
    return calls


def run_one(scenario, seconds, cpus):
    strace = shutil.which("strace")
    if not strace:
        raise RuntimeError("strace not found (apt-get install -y strace)")
    ctx = C.spawn_ctx()
    page = C.SharedPage()
    paths = [C.sock_path(f"sys-{scenario}-a"), C.sock_path(f"sys-{scenario}-b")]
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    procs = [ctx.Process(target=_worker, args=(role, scenario, paths, page.name, cpu, w), daemon=True)
             for role, cpu, (_, w) in zip("AB", cpus, pipes)]
    for p in procs:
        p.start()
    out = tempfile.NamedTemporaryFile("r", suffix=".strace", delete=False)
    st = None
    try:
        for r, _ in pipes:
            if not r.poll(60):
                raise TimeoutError("worker did not start")
            msg = r.recv()
            if msg != "ok":
                raise RuntimeError(msg)
        time.sleep(0.2)  # warm-up
        st = subprocess.Popen([strace, "-c", "-f", "-o", out.name, "-p", str(procs[0].pid), "-p", str(procs[1].pid)],
                              stderr=subprocess.PIPE, text=True)
        attached = 0
        t_end = time.monotonic() + 20
        while attached < 2 and time.monotonic() < t_end:
            line = st.stderr.readline()
            if not line:
                break
            if "attached" in line:
                attached += 1
        if attached < 2:
            raise RuntimeError("strace did not attach to both workers")
        time.sleep(0.05)
        page.map[0] = 1
        time.sleep(seconds)
        page.map[0] = 2
        time.sleep(0.01)
        st.send_signal(signal.SIGINT)
        st.wait(20)
        st = None
        page.map[0] = 3
        for p in procs:
            p.join(20)
        count = int.from_bytes(page.map[8:16], "little")
        calls = parse_strace_c(open(out.name).read())
    finally:
        if st is not None:
            st.kill()
            st.wait()
        page.map[0] = 3
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        page.close()
        os.unlink(out.name)
    total = sum(calls.values())
    return {"messages": count, "syscalls": total, "per_message": total / count if count else None, "calls": calls,
            "seconds": seconds}


def main(argv=None):
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--scenarios", default="rtt,stream")
    args = p.parse_args(argv)
    seconds = args.seconds or (0.5 if args.quick else 1.0)
    cpus = C.cpu_pair(args)
    res = {"benchmark": "syscalls", "cpus": list(cpus), "scenarios": {}}
    for sc in args.scenarios.split(","):
        try:
            r = run_one(sc, seconds, cpus)
        except Exception as e:
            r = {"error": f"{type(e).__name__}: {e}"}
        res["scenarios"][sc] = r
        C.progress(f"{sc}: {r.get('syscalls')} system calls, {r.get('messages')} messages")
    print(f"system calls while both sides are awake (strace -c -f on both workers), cpus {list(cpus)}")
    for sc, r in res["scenarios"].items():
        if "error" in r:
            print(f"{sc:8s} failed: {r['error']}")
            continue
        detail = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items(), key=lambda kv: -kv[1])) or "none"
        print(f"{sc:8s} {r['messages']:>10,d} messages, {r['syscalls']:>6d} system calls "
              f"({r['per_message']:.2e} per message): {detail}")
    C.write_json(args, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
