"""Two processes, one bus: the receiver listens, the sender connects and sends.

    python3 examples/send_receive.py

The script starts itself a second time as the receiving process. The
receiver creates the bus (it listens on a Unix socket path, which is only
used for the handshake), prints every message it gets, and ends when the
sender closes its end: iteration stops once everything sent was delivered.
"""
import sys

import tachyon
from _launch import two_processes

GREETINGS = [b"hello", b"from", b"the other process"]


def receive(path):
    with tachyon.Bus.listen(path, 1 << 16) as bus:
        for msg in bus:  # a Message: type_id, size and data (a bytes copy)
            print(f"type_id={msg.type_id} data={msg.data!r}", flush=True)


def send(path):
    # connect() waits (5 s by default) for the listener to appear.
    with tachyon.Bus.connect(path) as bus:
        for i, text in enumerate(GREETINGS):
            # timeout=None waits for room instead of raising BusFullError
            bus.send(text, type_id=i + 1, timeout=None)
    # leaving the block closes our end: the receiver's loop ends


if __name__ == "__main__":
    sys.exit(two_processes(__file__, receive, send))
