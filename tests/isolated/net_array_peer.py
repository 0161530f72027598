"""The producer of tests/test_net_arrays.py's send_array_zero_copy round trip,
in its own process.

    net_array_peer.py URL   connect to the tcp:// listener at URL, send every
                            case of CASES with send_array_zero_copy (filled in
                            place), then one whose block raises (nothing may
                            arrive), then the MARKER; print "readonly" with
                            each block's array flag afterwards; close
"""
import sys

import numpy as np

import tachyon

# (type_id, shape, dtype): each filled with fill(shape, dtype)
CASES = [(1, (2, 3, 4), "float64"), (2, (5,), "int8"), (3, (), "float32"), (4, (3, 0, 2), "int16"),
         (5, (3, 4), "float32")]
ROLLED_BACK = (6, (4,), "float64")
MARKER = (7, (2,), "uint8")


def fill(shape, dtype):
    """The values a case carries: distinct, negative ones for signed types."""
    n = int(np.prod(shape))
    return (np.arange(n) - n // 2).astype(dtype).reshape(shape)


if __name__ == "__main__":
    flags = []
    with tachyon.Bus.connect(sys.argv[1], timeout=20, role="producer") as bus:
        for tid, shape, dtype in CASES:
            with bus.send_array_zero_copy(shape, dtype, tid, timeout=20) as a:
                a[...] = fill(shape, dtype)
            flags.append(a.flags.writeable)
        tid, shape, dtype = ROLLED_BACK
        try:
            with bus.send_array_zero_copy(shape, dtype, tid, timeout=20) as a:
                a[...] = fill(shape, dtype)
                raise RuntimeError("abandoned")
        except RuntimeError:
            pass
        flags.append(a.flags.writeable)
        tid, shape, dtype = MARKER
        with bus.send_array_zero_copy(shape, dtype, tid, timeout=20) as a:
            a[...] = fill(shape, dtype)
    print("readonly", *[not w for w in flags], flush=True)
