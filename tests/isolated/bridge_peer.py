"""One program at an end of a bridge, for tests/test_bridge.py, in its own
process. ADDR is a local socket path or a tcp:// address; HOW is listen or
connect; CAP the capacity when listening. TACHYON_TEST_LIVENESS sets a tcp://
end's liveness; TACHYON_TEST_CURVE="SERVER_SECRET CLIENT_PUBLIC" makes a
tcp:// listener a CURVE one, TACHYON_TEST_INSECURE=1 lets it bind beyond
loopback without. TACHYON_TEST_PAUSE="SEQ,SEQ... SECONDS" makes a producer
sleep before each message SEQ (its consumer finds nothing meanwhile). A peer found dead
(PeerDeadError) prints "dead: WHY" and exits 3.

    bridge_peer.py produce ADDR HOW CAP N SEED MAXP [MINP]
                                                      send N checked messages (sizes
                                                      log-uniform to MAXP, at least
                                                      MINP), close;
                                                      prints "sent N BYTES", or
                                                      "closed after N" if the bridge
                                                      went away first
    bridge_peer.py consume ADDR HOW CAP N SEED MAXP [MINP]
                                                      take checked messages until the
                                                      orderly close; prints "got N BYTES"
    bridge_peer.py hang ADDR HOW CAP ROLE             open with ROLE, print "ready", sleep
"""
import os
import sys
import time

import tachyon
from streamcheck import payload_of, sizes, type_id_of

mode, addr, how, cap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kw = {}
if addr.startswith("tcp://"):
    kw["liveness"] = float(os.environ.get("TACHYON_TEST_LIVENESS", "5"))
    if how == "listen" and os.environ.get("TACHYON_TEST_INSECURE") == "1":
        kw["insecure"] = True  # a veth address in a test namespace
    if how == "listen" and os.environ.get("TACHYON_TEST_CURVE"):
        secret, client = os.environ["TACHYON_TEST_CURVE"].split()
        kw.update(curve_secret=secret, allowed_clients=[client])
role = {"produce": "producer", "consume": "consumer"}.get(mode) or sys.argv[5]
if how == "listen":
    bus = tachyon.Bus.listen(addr, cap, timeout=30, role=role, **kw)
else:
    bus = tachyon.Bus.connect(addr, timeout=30, role=role, **kw)
print("ready", flush=True)

if mode == "hang":
    time.sleep(60)
    sys.exit(0)
n, seed, maxp = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
minp = int(sys.argv[8]) if len(sys.argv) > 8 else 0


def sized(seed, maxp, n):
    return (max(minp, size) for size in sizes(seed, maxp, n))


def on_dead(kind, value, tb):
    if issubclass(kind, tachyon.PeerDeadError):
        print("dead:", value, flush=True)
        os._exit(3)
    sys.__excepthook__(kind, value, tb)


sys.excepthook = on_dead
with bus:
    done = total = 0
    if mode == "produce":
        try:
            pause_at, pause = os.environ.get("TACHYON_TEST_PAUSE", "-1 0").split()
            pause_before = {int(seq) for seq in pause_at.split(",")}
            for seq, size in enumerate(sized(seed, maxp, n)):
                if seq in pause_before:
                    time.sleep(float(pause))
                bus.send(payload_of(seq, size), type_id_of(seq), timeout=30)
                done += 1
                total += size
        except tachyon.PeerClosedError:
            print("closed after", done, flush=True)
            sys.exit(0)
        print("sent", done, total, flush=True)
    else:
        expected = sized(seed, maxp, n)
        try:
            while True:
                with bus.recv_zero_copy(timeout=30) as rx:
                    size = next(expected)
                    if rx.type_id != type_id_of(done) or bytes(rx) != payload_of(done, size):
                        print(f"message {done} differs: type_id {rx.type_id}, {len(rx)} bytes",
                              flush=True)
                        sys.exit(1)
                done += 1
                total += size
        except tachyon.PeerClosedError:
            pass
        print("got", done, total, flush=True)
