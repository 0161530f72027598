"""Zero-copy both ways: the sender fills a slot of the ring in place, the
receiver reads the slot in place.

    python3 examples/zero_copy.py

send_zero_copy() reserves a slot and yields a writable buffer over it; the
message is published when the block ends (and dropped if it raises).
recv_zero_copy() yields a read-only buffer over the received slot; the slot
goes back to the sender once the block is left and no view of it is alive.
"""
import sys

import tachyon
from _launch import two_processes

PAYLOAD = b"written straight into shared memory"


def receive(path):
    with tachyon.Bus.listen(path, 1 << 16) as bus:
        with bus.recv_zero_copy() as rx:
            with memoryview(rx) as view:  # no copy: this reads the ring
                print(f"type_id={rx.type_id} size={len(view)} starts={bytes(view[:7])!r}")
                print(f"intact={view == PAYLOAD}")


def send(path):
    with tachyon.Bus.connect(path) as bus:
        with bus.send_zero_copy(size=len(PAYLOAD), type_id=42) as tx:
            with memoryview(tx) as view:
                view[:] = PAYLOAD
            # actual_size says how many of the reserved bytes were used
            tx.actual_size = len(PAYLOAD)


if __name__ == "__main__":
    sys.exit(two_processes(__file__, receive, send))
