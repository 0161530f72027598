"""Across hosts: the same bus over TCP, with one change, the address.

    pip install "tachyon-ipc[net]"      # pyzmq
    python3 examples/across_hosts.py

The script starts itself a second time as the receiving process, and the two
talk over loopback TCP. Across two machines, run the receiver with
tcp://0.0.0.0:5555 on one and the sender with tcp://RECEIVER-HOST:5555 on
the other, with CURVE keys (curve_secret= and allowed_clients= here,
curve_server_key= and curve_keypair= there), or insecure=True on a trusted
network (docs/ACROSS_HOSTS.md). The code is the code of a local bus: Message
copies, a received view read in place (read-only, 64-byte aligned, DLPack),
an array filled in place and received with its dtype and shape, and the loop
that ends once the sender closed and everything arrived.
"""
import sys

import numpy as np

import tachyon
from _launch import loopback_tcp_address, two_processes


def receive(url):
    with tachyon.Bus.listen(url, 1 << 20, timeout=30) as bus:
        msg = bus.recv(timeout=10)
        print(f"type_id={msg.type_id} data={msg.data!r}", flush=True)
        with bus.recv_zero_copy(timeout=10) as rx:
            readings = np.from_dlpack(rx).view(np.float64)  # in place, read-only
            print(f"type_id={rx.type_id} readings={readings.size} mean={readings.mean():.1f}",
                  flush=True)
            del readings
        grid = bus.recv_array(timeout=10)  # dtype and shape came with it
        print(f"grid: shape={grid.shape} dtype={grid.dtype} sum={grid.sum()}", flush=True)
        for msg in bus:
            print(f"type_id={msg.type_id} data={msg.data!r}", flush=True)
    print("the sender closed; everything arrived", flush=True)


def send(url):
    # connect() waits (here up to 10 s) for the listener and its handshake
    with tachyon.Bus.connect(url, timeout=10) as bus:
        bus.send(b"hello from the other host", type_id=1, timeout=None)
        bus.send(np.arange(1000, dtype=np.float64), type_id=2, timeout=None)
        # filled in place, then sent as a tensor frame when the block ends
        with bus.send_array_zero_copy((2, 3), np.float32, type_id=4, timeout=None) as grid:
            grid[...] = np.arange(6).reshape(2, 3)
        bus.send(b"bye", type_id=3, timeout=None)


if __name__ == "__main__":
    address = None if "--child" in sys.argv else [loopback_tcp_address()]
    sys.exit(two_processes(__file__, receive, send, addresses=address))
