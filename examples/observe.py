"""Watch a bus from a third process: its counters and both ends, read from
outside the two processes that talk on it.

    python3 examples/observe.py

The consumer (this process) and a producer (a child) exchange 1000 messages;
then `python -m tachyon list --json`, run as a third process, finds the bus
in /proc, maps it read-only and reports what it sees. While any two
processes talk, `python -m tachyon list` (or `top`, or `metrics --port N`)
shows the same from any shell of the same user.
"""
import json
import os
import subprocess
import sys
import tempfile

import tachyon

COUNT = 1000


def produce(path):
    with tachyon.Bus.connect(path, timeout=10) as bus:
        for i in range(COUNT):
            bus.send(i.to_bytes(4, "little") * 8, type_id=1, timeout=None)
        sys.stdin.readline()  # stay connected until the observer has looked


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--produce":
        produce(sys.argv[2])
        return 0
    path = os.path.join(tempfile.gettempdir(), f"tachyon-example-{os.getpid()}.sock")
    producer = subprocess.Popen([sys.executable, __file__, "--produce", path], stdin=subprocess.PIPE)
    with tachyon.Bus.listen(path, 1 << 16, timeout=10) as bus:
        for _ in range(COUNT):
            bus.recv(timeout=10)
        bus.try_recv()  # finding the ring empty publishes the consumer's counters

        # The third process: it finds the bus through /proc and only reads it.
        out = subprocess.run([sys.executable, "-m", "tachyon", "list", "--json"],
                             capture_output=True, text=True, check=True).stdout
        (found,) = [b for b in json.loads(out)["buses"] if b["path"] == path]
        print(f"found the bus: sent {found['sent_messages']} messages ({found['sent_bytes']} bytes), "
              f"received {found['received_messages']}")
        for end in found["ends"]:
            print(f"{end['side']}: {end['role']}, {end['impl']}, {end['alive']}")
        producer.communicate(b"\n")
    return producer.returncode


if __name__ == "__main__":
    sys.exit(main())
