"""python -m tachyon COMMAND [--help]

Commands:
  list      the live buses on this machine, one line each (--json for a document)
  top       a terminal view of the live buses, refreshed every 0.5 s (--json for samples)
  metrics   serve the live buses' counters in Prometheus text format on 127.0.0.1
  bench     round-trip latency between two processes
  bridge    forward one bus into another (a local socket path or tcp://HOST:PORT each),
            so that a local program reaches another host unchanged

list, top and metrics find buses through /proc and map them read-only: they
never write to a bus and need no cooperation from the processes using it.
"""
import sys

COMMANDS = ("list", "top", "metrics", "bench", "bridge")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        from . import bench
        return bench.main(rest)
    if cmd == "bridge":
        from . import bridge
        return bridge.main(rest)
    if cmd in ("list", "top", "metrics"):
        from . import monitor
        try:
            return getattr(monitor, f"main_{cmd}")(rest)
        except BrokenPipeError:  # `list | head`: the reader is done
            sys.stderr.close()
            return 0
    print(f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)} (python -m tachyon --help)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
