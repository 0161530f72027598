"""The Python end of the C frame example: listens, starts the C producer
(built from frame_producer.c) as the other process, and prints each array
it sends: message type, dtype, shape, sum and a CRC-32 of the bytes, all
read in place in the ring.

    python3 examples/c/receive_frames.py PATH/TO/frame_producer    (needs numpy)
"""
import os
import subprocess
import sys
import tempfile
import zlib

import tachyon


def main():
    producer = sys.argv[1]
    path = os.path.join(tempfile.gettempdir(), f"tachyon-c-frames-{os.getpid()}.sock")
    child = subprocess.Popen([producer, path])
    try:
        with tachyon.Bus.listen(path, 1 << 22, timeout=10) as bus:  # 4 MiB: the 0.9 MB image fits
            while True:
                try:
                    rx = bus.recv_zero_copy()
                except tachyon.PeerClosedError:  # the producer closed after its last frame
                    break
                with rx:
                    a = rx.array()  # read-only numpy array over the slot: dtype and shape from the header
                    print(f"type_id={tachyon.msg_type(rx.type_id)} dtype={a.dtype} shape={a.shape} "
                          f"sum={a.sum(dtype='float64'):.1f} crc32={zlib.crc32(a):08x}")
                    del a  # the slot goes back once no array reads it
    finally:
        code = child.wait(timeout=30)
    return code


if __name__ == "__main__":
    sys.exit(main())
