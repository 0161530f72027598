"""The observer commands: python -m tachyon list | top | metrics.

All three read what tachyon.observe finds; none of them writes to a bus.
"""
import argparse
import json
import math
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from . import observe

SPARK = "▁▂▃▄▅▆▇█"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _fmt_end(e: Dict[str, Any]) -> str:
    if e["pid"] is None:
        return f"{e['side']} -"
    bits = [b for b in (e["impl"], e["role"], e["alive"]) if b]
    return f"{e['side']} {e['pid']} ({', '.join(bits)})"


def _fmt_pinned(n: Optional[int]) -> str:
    return "?" if n is None else _fmt_bytes(n)


def _unreadable_line(unreadable: List[Dict[str, Any]]) -> Optional[str]:
    if not unreadable:
        return None
    uids = sorted({u["uid"] for u in unreadable if u["uid"] is not None})
    return (f"{len(unreadable)} processes of other users not readable (uids "
            f"{', '.join(map(str, uids))}): their buses are not shown; run as their user or with "
            "CAP_SYS_PTRACE")


# ---- list -------------------------------------------------------------------

def main_list(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tachyon list",
        description="List the live buses on this machine: one line per ring with its path, "
                    "capacity, fill, state, consumer wait state, counters and both ends (pid, "
                    "implementation ours/0.5.1, role, liveness).")
    p.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = p.parse_args(argv)
    with observe.scan() as snap:
        if args.json:
            print(json.dumps(snap.to_json(), indent=1))
            return 0
        if not snap.rings:
            print("no live tachyon buses found")
        for ring in snap.rings:
            d = ring.describe()
            if not d["readable"]:
                print(f"{d['path']}  held by {', '.join(map(str, d['holders']))}  {d['error']}")
                continue
            ends = "  ".join(_fmt_end(e) for e in d["ends"])
            print(f"{d['path']}  capacity {_fmt_bytes(d['capacity'])}  fill {d['fill'] * 100:.1f}%  "
                  f"{d['state']}  consumer {d['consumer_wait']}  sent {d['sent_messages']:,} msgs "
                  f"{_fmt_bytes(d['sent_bytes'])}  received {d['received_messages']:,} msgs  "
                  f"pinned {_fmt_pinned(d['pinned_bytes'])}  {ends}")
        line = _unreadable_line(snap.unreadable)
        if line:
            print(line)
    return 0


# ---- metrics ----------------------------------------------------------------

def _label(v: Any) -> str:
    s = str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{s}"'


METRICS = (
    ("tachyon_bus_capacity_bytes", "gauge", "Data ring size.", "capacity"),
    ("tachyon_bus_used_bytes", "gauge", "Bytes published and not yet released (head - tail).", "used"),
    ("tachyon_bus_head_bytes_total", "counter", "The producer's head: ring bytes ever published.", "head"),
    ("tachyon_bus_tail_bytes_total", "counter", "The consumer's tail: ring bytes ever released.", "tail"),
    ("tachyon_bus_sent_messages_total", "counter",
     "Messages the producer committed, as last published (0 for a 0.5.1 producer).", "sent_messages"),
    ("tachyon_bus_sent_payload_bytes_total", "counter",
     "Payload bytes the producer committed, as last published.", "sent_bytes"),
    ("tachyon_bus_received_messages_total", "counter",
     "Messages the consumer read, as last published (0 for a 0.5.1 consumer).", "received_messages"),
    ("tachyon_bus_received_payload_bytes_total", "counter",
     "Payload bytes the consumer read, as last published.", "received_bytes"),
    ("tachyon_bus_pinned_bytes", "gauge",
     "Ring bytes our consumer has read and still holds (live exports), as last published; "
     "absent for a 0.5.1 consumer.", "pinned_bytes"),
)


def render_metrics(snap: "observe.Snapshot") -> str:
    """Prometheus text exposition format, version 0.0.4."""
    records = [r.describe() for r in snap.rings]
    lines: List[str] = []
    readable = [d for d in records if d["readable"]]
    for name, kind, help_, key in METRICS:
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
        for d in readable:
            if d[key] is not None:
                lines.append(f"{name}{{path={_label(d['path'])},inode=\"{d['inode']}\"}} {d[key]}")
    lines += ["# HELP tachyon_bus_state The ring state word (2 ready, 3 closed, 4 fatal) as a label.",
              "# TYPE tachyon_bus_state gauge"]
    for d in readable:
        lines.append(f"tachyon_bus_state{{path={_label(d['path'])},inode=\"{d['inode']}\","
                     f"state={_label(d['state'])}}} 1")
    lines += ["# HELP tachyon_bus_end_alive 1 while the end's process holds the ring.",
              "# TYPE tachyon_bus_end_alive gauge"]
    for d in readable:
        for e in d["ends"]:
            if e["pid"] is None:
                continue
            lines.append(
                f"tachyon_bus_end_alive{{path={_label(d['path'])},inode=\"{d['inode']}\","
                f"side=\"{e['side']}\",pid=\"{e['pid']}\",impl={_label(e['impl'] or 'unknown')},"
                f"role={_label(e['role'] or 'none')}}} {1 if e['alive'] == 'alive' else 0}")
    lines += ["# HELP tachyon_bus_unreadable 1 for a ring found whose memfd this observer may not open.",
              "# TYPE tachyon_bus_unreadable gauge"]
    for d in records:
        if not d["readable"]:
            lines.append(f"tachyon_bus_unreadable{{path={_label(d['path'])},inode=\"{d['inode']}\"}} 1")
    lines += ["# HELP tachyon_unreadable_processes Processes of other users whose fds could not be listed.",
              "# TYPE tachyon_unreadable_processes gauge",
              f"tachyon_unreadable_processes {len(snap.unreadable)}"]
    return "\n".join(lines) + "\n"


def main_metrics(argv: Sequence[str]) -> int:
    import http.server

    p = argparse.ArgumentParser(
        prog="python -m tachyon metrics",
        description="Serve the live buses' counters in Prometheus text format at "
                    "http://127.0.0.1:PORT/metrics (each scrape scans /proc afresh).")
    p.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0 picks a free one)")
    args = p.parse_args(argv)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            with observe.scan() as snap:
                body = render_metrics(snap).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"serving metrics on http://127.0.0.1:{server.server_address[1]}/metrics", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# ---- top --------------------------------------------------------------------

class Watch:
    """Rings being watched: rescanned every `rescan` seconds, sampled on every tick."""

    def __init__(self, rescan: float = 2.0, history: int = 40) -> None:
        self.rescan = rescan
        self.history = history
        self.snap: Optional[observe.Snapshot] = None
        self.scanned = -math.inf
        self.prev: Dict[Any, observe.Sample] = {}
        self.hist: Dict[Any, List[float]] = {}

    def close(self) -> None:
        if self.snap:
            self.snap.close()

    def tick(self) -> List[Dict[str, Any]]:
        now = time.monotonic()
        if now - self.scanned >= self.rescan:
            old = self.snap
            self.snap = observe.scan()
            self.scanned = now
            if old:
                old.close()
        assert self.snap is not None
        rows = []
        for ring in self.snap.rings:
            d = ring.describe() if not ring.readable else None
            if d is not None:
                rows.append(d)
                continue
            s = ring.sample()
            d = ring.describe(s)
            ends = d["ends"]
            prod = next((e for e in ends if e["role"] == "producer"), None)
            cons = next((e for e in ends if e["role"] == "consumer"), None)
            a = self.prev.get(ring.key)
            if a is not None:
                r = observe.rates(a, s, bool(prod and prod["impl"] == "ours"),
                                  bool(cons and cons["impl"] == "ours"))
            else:
                r = {"msg_per_s": 0.0, "bytes_per_s": 0.0}
            self.prev[ring.key] = s
            h = self.hist.setdefault(ring.key, [])
            h.append(r["msg_per_s"] if not math.isnan(r["msg_per_s"]) else r["bytes_per_s"])
            del h[:-self.history]
            d.update(r)
            d["history"] = list(h)
            rows.append(d)
        live = {r.key for r in self.snap.rings}
        for k in list(self.prev):
            if k not in live:
                self.prev.pop(k, None)
                self.hist.pop(k, None)
        return rows


def sparkline(values: Sequence[float], width: int) -> str:
    vals = [v for v in values if not math.isnan(v)][-width:]
    if not vals:
        return ""
    top = max(vals) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in vals)


SORTS = {"m": ("msg/s", lambda d: -d.get("msg_per_s", 0) if not math.isnan(d.get("msg_per_s", 0)) else 0),
         "b": ("GB/s", lambda d: -d.get("bytes_per_s", 0)),
         "f": ("fill", lambda d: -d.get("fill", 0)),
         "p": ("path", lambda d: d["path"])}


def _row_text(d: Dict[str, Any], width: int) -> str:
    if not d["readable"]:
        return f"{d['path'][:30]:<30} {d['error']}"[:width]
    msg = d.get("msg_per_s", 0.0)
    msg_s = "      -" if math.isnan(msg) else f"{msg:>12,.0f}"
    pids = " ".join(f"{e['pid']}{'' if e['alive'] == 'alive' else '!'}" for e in d["ends"] if e["pid"])
    text = (f"{d['path'][:30]:<30} {pids:<14} {msg_s} {d.get('bytes_per_s', 0.0) / 1e9:>8.3f} "
            f"{d['fill'] * 100:>6.1f}% {d['state']:<7} {d['consumer_wait']:<9} ")
    return (text + sparkline(d.get("history", []), max(0, width - len(text) - 1)))[:width]


HEADER = f"{'PATH':<30} {'PIDS':<14} {'MSG/S':>12} {'GB/S':>8} {'FILL':>7} {'STATE':<7} {'CONSUMER':<9} HISTORY"


def _run_curses(stdscr: Any, interval: float) -> None:
    import curses

    curses.curs_set(0)
    stdscr.timeout(int(interval * 1000))
    watch = Watch()
    sort = "m"
    try:
        while True:
            rows = watch.tick()
            rows.sort(key=SORTS[sort][1])
            h, w = stdscr.getmaxyx()
            stdscr.erase()
            title = (f"tachyon top  {len(rows)} bus(es)  every {interval:g} s  sorted by "
                     f"{SORTS[sort][0]}  keys: m b f p sort, q quit")
            stdscr.addnstr(0, 0, title, w - 1, curses.A_BOLD)
            stdscr.addnstr(1, 0, HEADER, w - 1, curses.A_REVERSE)
            for i, d in enumerate(rows[:max(0, h - 3)]):
                stdscr.addnstr(2 + i, 0, _row_text(d, w - 1), w - 1)
            if not rows:
                stdscr.addnstr(2, 0, "no live tachyon buses found", w - 1)
            assert watch.snap is not None
            note = _unreadable_line(watch.snap.unreadable)
            if note and h > 3:
                stdscr.addnstr(h - 1, 0, note, w - 1, curses.A_DIM)
            stdscr.refresh()
            key = stdscr.getch()
            if key in (ord("q"), ord("Q"), 27):
                return
            if key >= 0 and chr(key) in SORTS:
                sort = chr(key)
    finally:
        watch.close()


def main_top(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tachyon top",
        description="A terminal view of the live buses: msg/s, GB/s, fill, state and a sparkline "
                    "of recent traffic per ring. Keys: m, b, f, p sort by msg/s, GB/s, fill, path; "
                    "q quits.")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between refreshes (default 0.5)")
    p.add_argument("--json", action="store_true", help="print one JSON line per refresh instead of the view")
    p.add_argument("--count", type=int, default=0, help="with --json: stop after this many lines (0: never)")
    args = p.parse_args(argv)
    if args.interval <= 0:
        p.error("--interval must be > 0")
    if args.json:
        watch = Watch()
        n = 0
        try:
            while True:
                rows = watch.tick()
                for d in rows:
                    for k in ("msg_per_s", "bytes_per_s"):
                        if k in d and math.isnan(d[k]):
                            d[k] = None
                    d.pop("history", None)
                print(json.dumps({"time": time.time(), "buses": rows}), flush=True)
                n += 1
                if args.count and n >= args.count:
                    return 0
                time.sleep(args.interval)
        except (KeyboardInterrupt, BrokenPipeError):
            return 0
        finally:
            watch.close()
    import curses

    try:
        curses.wrapper(_run_curses, args.interval)
    except KeyboardInterrupt:
        pass
    return 0
