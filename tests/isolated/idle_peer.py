"""A peer driven line by line from stdin, for the liveness tests (R5).

usage: idle_peer.py PATH STYLE
STYLE: ours-closed-socket  our producer that closes its socket right after
                           the handshake, as tachyon-ipc 0.5.1 does
       legacy              a 0.5.1-style producer in Python (fakepeer.py):
                           it listens at PATH, closes everything after the
                           handshake and writes the ring by hand
       consumer            our consumer (connects)
Commands: "send K" (producers: K more numbered messages, then "sent N"),
"recv K" (consumer: K messages, then "got N"), "exit" (leaves without
closing: a dead peer). Prints "ready" once the bus is up. Between commands it
is idle: no call on the bus, for as long as the test wants.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakepeer  # noqa: E402
import tachyon  # noqa: E402

path, style = sys.argv[1], sys.argv[2]
if style == "legacy":
    fd = fakepeer.legacy_listen(path, 1 << 12, accept_timeout=20)
    prod = fakepeer.Producer(fd, 1 << 12)
    send = lambda i: prod.send(i.to_bytes(4, "little") * 8, i)  # noqa: E731
else:
    bus = tachyon.Bus.connect(path, timeout=20)
    if style == "ours-closed-socket":
        closed = fakepeer.socket_fds()
        assert closed, "expected the bus's socket among our descriptors"
        for sfd in closed:
            os.close(sfd)
    send = lambda i: bus.send(i.to_bytes(4, "little") * 8, type_id=i, timeout=None)  # noqa: E731
print("ready", flush=True)
n = 0
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "send":
        for _ in range(int(cmd[1])):
            send(n)
            n += 1
        print("sent", n, flush=True)
    elif cmd[0] == "recv":
        for _ in range(int(cmd[1])):
            msg = bus.recv(timeout=10)
            assert msg.type_id == n, (msg.type_id, n)
            n += 1
        print("got", n, flush=True)
    elif cmd[0] == "exit":
        break
sys.stdout.flush()
os._exit(0)  # no close, no dealloc (and the socket fd may be gone already)
