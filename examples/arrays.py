"""Arrays as messages: the dtype and shape travel with the data.

    python3 examples/arrays.py        (needs numpy)

send_array() writes a small header (dtype, shape) and the array's bytes into
the ring in one copy; the receiver gets the array back as it was sent, with
no reshaping: .array() reads it in place in the ring, recv_array() returns
a copy of its own. send_array_zero_copy() lets the sender fill the array in
the ring itself.
"""
import sys

import numpy as np

import tachyon
from _launch import two_processes

FRAME, MATRIX = 1, 2  # type_ids of the two kinds of array this program sends


def receive(path):
    with tachyon.Bus.listen(path, 1 << 24) as bus:  # 16 MiB ring: two 6 MB frames fit
        with bus.recv_zero_copy() as rx:
            image = rx.array()  # read-only, in place: no copy of the 6 MB
            print(f"frame: type_id={tachyon.msg_type(rx.type_id)} shape={image.shape} dtype={image.dtype} "
                  f"mean={image.mean():.1f}")
            del image  # give the slot back before the guard ends
        matrix = bus.recv_array()  # a copy, safe to keep
        print(f"matrix: shape={matrix.shape} dtype={matrix.dtype} trace={np.trace(matrix):.1f}")


def send(path):
    image = np.zeros((1080, 1920, 3), dtype=np.uint8)
    image[..., 1] = 255  # a green video frame
    with tachyon.Bus.connect(path) as bus:
        bus.send_array(image, type_id=FRAME, timeout=None)
        with bus.send_array_zero_copy((4, 4), np.float32, type_id=MATRIX, timeout=None) as matrix:
            matrix[:] = np.eye(4, dtype=np.float32) * 2.5  # written straight into the ring


if __name__ == "__main__":
    sys.exit(two_processes(__file__, receive, send))
