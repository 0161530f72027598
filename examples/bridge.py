"""A local program reaches another host through the bridge, unchanged.

    pip install "tachyon-ipc[net]"      # pyzmq
    python3 examples/bridge.py

The sending program below is a plain local-bus program: it connects to a
socket path. On its host, `python -m tachyon bridge` listens at that path
and forwards every message to a tcp:// address, where the receiving program
(here a second process standing in for the other host) listens. The script
runs all three over loopback; across two machines, the receiver listens on
tcp://0.0.0.0:5555 with CURVE keys (or insecure=True on a trusted network)
and the bridge connects to tcp://RECEIVER-HOST:5555 (docs/ACROSS_HOSTS.md).
"""
import os
import subprocess
import sys
import tempfile

import tachyon
from _launch import loopback_tcp_address, two_processes


def receive(url, path):
    with tachyon.Bus.listen(url, 1 << 20, timeout=30) as bus:
        for msg in bus:
            print(f"type_id={msg.type_id} data={msg.data!r}", flush=True)
    print("the local program closed; the bridge forwarded everything", flush=True)


def send(url, path):
    bridge = subprocess.Popen([sys.executable, "-m", "tachyon", "bridge",
                               "--from-listen", path, "--to-connect", url])
    # the local program: nothing in it knows about the network
    with tachyon.Bus.connect(path, timeout=10) as bus:
        for i, word in enumerate([b"frame 1", b"frame 2", b"last frame"], start=1):
            bus.send(word, type_id=i, timeout=None)
    # the bridge exits 0 once it forwarded everything and closed its tcp:// end
    if bridge.wait(timeout=30) != 0:
        sys.exit(f"the bridge exited {bridge.returncode}")


if __name__ == "__main__":
    # the receiver's tcp:// address, and the socket path the local program knows
    path = os.path.join(tempfile.gettempdir(), f"tachyon-example-bridge-{os.getpid()}.sock")
    address = None if "--child" in sys.argv else [loopback_tcp_address(), path]
    sys.exit(two_processes(__file__, receive, send, buses=2, addresses=address))
