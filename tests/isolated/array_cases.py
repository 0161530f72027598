"""The arrays both ends of the two-process array tests agree on: every
numpy dtype a tensor frame carries, 0-d, empty and 6-d shapes, Fortran-ordered
and sliced input, and torch CPU tensors (bfloat16 and bool among them).
Deterministic, so each process can build the expected values itself."""
import numpy as np

NUMPY_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64", "complex64", "complex128"]


def numpy_cases():
    """[(name, array as sent, array expected)]."""
    out = []
    for i, name in enumerate(NUMPY_DTYPES):
        a = (np.arange(2 * 3 * 5) % 7 + i).astype(name).reshape(2, 3, 5)
        out.append((name, a, a))
    base = np.arange(4 * 6, dtype=np.float64).reshape(4, 6)
    out.append(("0-d", np.array(2.5, dtype=np.float32), np.array(2.5, dtype=np.float32)))
    out.append(("empty", np.zeros((3, 0, 2), dtype=np.int16), np.zeros((3, 0, 2), dtype=np.int16)))
    six = np.arange(2 * 3 * 1 * 2 * 2 * 3, dtype=np.int32).reshape(2, 3, 1, 2, 2, 3)
    out.append(("6-d", six, six))
    out.append(("fortran", np.asfortranarray(base), base))
    out.append(("sliced", base[::2, 1::2], np.ascontiguousarray(base[::2, 1::2])))
    return out


def torch_cases():
    import torch

    out = []
    for name in ("float32", "bfloat16", "bool", "int64", "uint8"):
        dt = getattr(torch, name)
        out.append((name, (torch.arange(12) % 3).to(dt).reshape(3, 4)))
    t = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    out.append(("transposed", t.t()))
    return out
