"""The Python end of the C++ example: listens, starts the C++ sender
(built from sender.cpp) as the other process, prints what arrives.

    python3 examples/cpp/receive.py PATH/TO/sender [COUNT]
"""
import os
import subprocess
import sys
import tempfile

import tachyon


def main():
    sender = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    path = os.path.join(tempfile.gettempdir(), f"tachyon-cpp-example-{os.getpid()}.sock")
    child = subprocess.Popen([sender, path, str(count)])
    try:
        with tachyon.Bus.listen(path, 1 << 16, timeout=10) as bus:
            for msg in bus:  # ends when the sender closes its end
                print(f"type_id={msg.type_id} data={msg.data.decode()}")
    finally:
        code = child.wait(timeout=30)
    return code


if __name__ == "__main__":
    sys.exit(main())
