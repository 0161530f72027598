"""Does watching a bus disturb it? Ping-pong p50 with and without `python -m tachyon top`.

Each round runs `python -m tachyon bench` (two processes, hybrid waits) twice:
once alone, once while `top` watches every bus at its default 0.5 s refresh
(in a tmux terminal when tmux is installed, so the drawing is included;
otherwise `top --json`, the same reads without curses). The order alternates
from round to round, and the ratio reported is the median of the per-round
ratios of p50 (watched / alone). An observer only loads from the shared
lines (ABI.md, "Traffic counters and observing a bus"), so the ratio should
stay within noise; the target is below 1.05.
"""
from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import _common as C

P50 = re.compile(r"round trip \(us\):.*?p50 ([\d.]+)")


def run_bench(args) -> float:
    env = dict(os.environ, PYTHONPATH=str(C.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "tachyon", "bench", "--count", str(args.iters), "--warmup", "1000",
           "--size", "32", "--cpus", args.cpus]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True).stdout
    m = P50.search(out)
    if not m:
        raise RuntimeError(f"no p50 in the bench output:\n{out}")
    return float(m.group(1))


class Observer:
    """`python -m tachyon top` running beside the benchmark until stopped."""

    def __init__(self, view: str):
        self.view = view
        env_path = str(C.REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
        if view == "tmux":
            self.session = f"tachyon-observer-bench-{os.getpid()}"
            subprocess.run(["tmux", "new-session", "-d", "-s", self.session, "-x", "160", "-y", "40",
                            f"PYTHONPATH={env_path} {sys.executable} -m tachyon top --interval 0.5"],
                           check=True)
        else:
            self.proc = subprocess.Popen([sys.executable, "-m", "tachyon", "top", "--json", "--interval", "0.5"],
                                         stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=env_path))
        time.sleep(1.0)  # its first scan is done before the measurement starts

    def stop(self) -> None:
        if self.view == "tmux":
            subprocess.run(["tmux", "send-keys", "-t", self.session, "q"], capture_output=True)
            time.sleep(0.3)
            subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)
        else:
            self.proc.terminate()
            self.proc.wait(10)


def main() -> int:
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=None, help="timed round trips per run (default 20000)")
    p.add_argument("--view", choices=("tmux", "json", "auto"), default="auto",
                   help="how top runs: in tmux (curses), as --json, or tmux when installed (default)")
    args = p.parse_args()
    rounds = args.rounds or (4 if args.quick else 8)
    args.iters = args.iters or (5000 if args.quick else 20000)
    view = args.view if args.view != "auto" else ("tmux" if shutil.which("tmux") else "json")
    alone, watched, ratios = [], [], []
    for r in range(rounds):
        pair = {}
        for watched_first in ([True, False] if r % 2 else [False, True]):
            if watched_first:
                obs = Observer(view)
                try:
                    pair["watched"] = run_bench(args)
                finally:
                    obs.stop()
            else:
                pair["alone"] = run_bench(args)
        alone.append(pair["alone"])
        watched.append(pair["watched"])
        ratios.append(pair["watched"] / pair["alone"])
        C.progress(f"round {r + 1}/{rounds}: p50 alone {pair['alone']:.2f} us, watched "
                   f"{pair['watched']:.2f} us, ratio {ratios[-1]:.3f}")
    ratio = statistics.median(ratios)
    print(f"ping-pong 32 B, hybrid waits, {rounds} paired rounds of {args.iters} round trips; top as {view}")
    print(f"p50 alone:   median {statistics.median(alone):.2f} us  (rounds: {', '.join(f'{v:.2f}' for v in alone)})")
    print(f"p50 watched: median {statistics.median(watched):.2f} us  (rounds: {', '.join(f'{v:.2f}' for v in watched)})")
    print(f"watched / alone: median ratio {ratio:.3f} (target < 1.05)")
    C.write_json(args, {"view": view, "rounds": rounds, "iters": args.iters, "p50_alone_us": alone,
                        "p50_watched_us": watched, "ratios": ratios, "ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
