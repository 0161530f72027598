"""One receiver, several buses: tachyon.wait says which have a message.

    python3 examples/wait_many.py

The receiver listens on three buses; the other process connects to all three
and sends on them in an order of its own. tachyon.wait returns the buses that
have a message now (it takes nothing); try_recv then takes it. A bus whose
peer closed is returned too, and its receive raises PeerClosedError.
"""
import sys

import tachyon
from _launch import two_processes

NAMES = ("sensors", "commands", "logs")


def receive(*paths):
    buses = [tachyon.Bus.listen(p, 1 << 16) for p in paths]  # the sender connects in this order
    still_open = dict(zip(buses, NAMES))
    got = []
    while still_open:
        for bus in tachyon.wait(list(still_open), timeout=10):
            try:
                msg = bus.try_recv()
            except tachyon.PeerClosedError:
                bus.close()
                del still_open[bus]
                continue
            if msg is not None:
                got.append(f"{still_open[bus]}: {msg.data.decode()}")
    print("\n".join(sorted(got)))


def send(*paths):
    buses = {name: tachyon.Bus.connect(p) for name, p in zip(NAMES, paths)}
    for name, text in [("logs", "started"), ("sensors", "21.5 C"), ("commands", "stop"), ("sensors", "21.7 C")]:
        buses[name].send(text.encode())
    for bus in buses.values():
        bus.close()


if __name__ == "__main__":
    sys.exit(two_processes(__file__, receive, send, buses=len(NAMES)))
