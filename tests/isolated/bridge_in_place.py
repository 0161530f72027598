"""python -m tachyon bridge run in this process, for tests/test_bridge.py,
with every payload the tcp end hands to libzmq looked up in this process's
memory map: that of a message sent for the first time (not a resend) from
the mapping of the source's ring counts as in place, any other (a copy on
the heap) as copied. Takes the bridge's arguments, --from-listen PATH among
them; after the bridge returns prints "handed IN_PLACE COPIED" (payloads of
at least LARGE bytes: the tests' large ones, which the bridge sends in place,
tachyon.bridge.PIN_MIN) and exits with its status, then "trims T let-gos L":
how often held payloads were copied out because they held more than half
the ring (_Pins.trim) or because the source had nothing more (_Pins.let_go).
A first argument --any-ring lifts the bridge's rule that only a ring of at
least four times the tcp capacity sends in place (IN_PLACE_RING_MIN), so that a
small ring holds slots beyond its budget and those two have work.
"""
import ctypes
import sys

import tachyon.bridge as bridge
import tachyon.net as net
from tachyon import _netwire as W

LARGE = 1 << 18

ring_name = "/memfd:" + sys.argv[sys.argv.index("--from-listen") + 1]
counts = {"in_place": 0, "copied": 0, "trims": 0, "let_gos": 0}
first_sent = set()  # sequence numbers handed over once already


def in_ring(address):
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return len(fields) == 6 and fields[5].strip().startswith(ring_name)
    return False


handed_over = net.NetBus._send


def watched(self, parts):
    if len(parts) == 2 and len(parts[1]) >= LARGE:
        seq = W.HEADER.unpack_from(parts[0])[6]
        if seq not in first_sent:
            first_sent.add(seq)
            address = ctypes.addressof(ctypes.c_char.from_buffer(parts[1]))
            counts["in_place" if in_ring(address) else "copied"] += 1
    return handed_over(self, parts)


unpin = net.NetBus._unpin


def counted_unpin(self, upto=None):
    counts["let_gos" if upto is None else "trims"] += 1
    return unpin(self, upto)


net.NetBus._send = watched
net.NetBus._unpin = counted_unpin
args = sys.argv[1:]
if args[:1] == ["--any-ring"]:
    args.pop(0)
    bridge.IN_PLACE_RING_MIN = 0
status = bridge.main(args)
print("handed", counts["in_place"], counts["copied"], "trims", counts["trims"], "let-gos",
      counts["let_gos"], flush=True)
sys.exit(status)
