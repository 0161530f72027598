"""python -m tachyon COMMAND: bench (round-trip latency between two processes)."""
import sys

from . import bench


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m tachyon bench [--size 32] [--count N] [--cpus A,B] [--capacity BYTES]")
        print("       python -m tachyon bench --help")
        return 0 if argv else 2
    if argv[0] == "bench":
        return bench.main(argv[1:])
    print(f"unknown command {argv[0]!r}; try: python -m tachyon bench", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
