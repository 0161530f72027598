"""Arrays in, tensors out: NumPy on the sending side, PyTorch reading the
ring in place on the receiving side through DLPack.

    python3 examples/torch_dlpack.py        (needs numpy and torch)

A received view exports its payload as a one-dimensional uint8 DLPack
tensor; .view() reinterprets it as the element type that was sent. The
tensor pins its slot: the sender cannot overwrite it while the tensor lives.
"""
import sys

import numpy as np

import tachyon
from _launch import two_processes


def receive(path):
    import torch

    with tachyon.Bus.listen(path, 1 << 16) as bus:
        with bus.drain_batch() as batch:  # at least one message, read in place
            tensor = torch.from_dlpack(batch[0]).view(torch.float32)
            print(f"{tensor} sum={tensor.sum().item()}")
            del tensor  # drop it before the batch ends, so its slot goes back at once


def send(path):
    values = np.arange(1, 5, dtype=np.float32)  # [1. 2. 3. 4.]
    with tachyon.Bus.connect(path) as bus:
        bus.send(values, type_id=1)  # any C-contiguous buffer: one copy into the ring


if __name__ == "__main__":
    sys.exit(two_processes(__file__, receive, send))
