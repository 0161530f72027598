"""DLPack: numpy.from_dlpack and torch.from_dlpack read received payloads in
place; legacy and versioned capsules; read-only flags; every deleter runs
exactly once, also from a thread that never ran Python; exports pin slots."""
import ctypes
import subprocess
import sysconfig
import threading

import numpy as np
import pytest

import tachyon

try:
    import torch
except ImportError:
    torch = None
_skip_without_torch = pytest.mark.skipif(
    torch is None, reason="torch is not installed for this Python (the 3.10 job has no torch)"
)


def needs_torch(fn):
    return pytest.mark.torch(_skip_without_torch(fn))

_GetName = ctypes.pythonapi.PyCapsule_GetName
_GetName.restype = ctypes.c_char_p
_GetName.argtypes = [ctypes.py_object]
_GetPointer = ctypes.pythonapi.PyCapsule_GetPointer
_GetPointer.restype = ctypes.c_void_p
_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_SetName = ctypes.pythonapi.PyCapsule_SetName
_SetName.restype = ctypes.c_int
_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]


class Legacy:
    """A wrapper that offers only the pre-1.0 protocol (stream only)."""

    def __init__(self, obj):
        self.obj = obj

    def __dlpack__(self, stream=None):
        return self.obj.__dlpack__(stream)

    def __dlpack_device__(self):
        return self.obj.__dlpack_device__()


def memfd_ranges():
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            if "memfd:" in line:
                lo, hi = line.split()[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def in_mapping(ptr, size):
    return any(lo <= ptr and ptr + size <= hi for lo, hi in memfd_ranges())


def counters():
    return tachyon._core._dlpack_counters()


def test_capsule_names_and_device(pair):
    prod, cons = pair
    prod.send(b"0123456789")
    with cons.recv_zero_copy(timeout=1) as rx:
        assert rx.__dlpack_device__() == (1, 0)
        assert _GetName(rx.__dlpack__()) == b"dltensor"
        assert _GetName(rx.__dlpack__(None)) == b"dltensor"
        assert _GetName(rx.__dlpack__(max_version=None)) == b"dltensor"
        assert _GetName(rx.__dlpack__(max_version=(0, 8))) == b"dltensor"
        assert _GetName(rx.__dlpack__(max_version=(1, 0))) == b"dltensor_versioned"
        assert _GetName(rx.__dlpack__(max_version=(2, 3), dl_device=(1, 0), copy=False)) == b"dltensor_versioned"
        with pytest.raises(BufferError, match="copies"):
            rx.__dlpack__(max_version=(1, 0), copy=True)
        with pytest.raises(BufferError, match="dl_device"):
            rx.__dlpack__(dl_device=(2, 0))
        with pytest.raises(BufferError, match="stream"):
            rx.__dlpack__(1)
    assert cons.stats.pinned_bytes == 0  # never-consumed capsules ran their deleters


def test_numpy_in_place_versioned_and_legacy(pair):
    prod, cons = pair
    prod.send(bytes(range(64)), type_id=3)
    with cons.recv_zero_copy(timeout=1) as rx:
        with memoryview(rx) as mv:
            base = np.frombuffer(mv, dtype=np.uint8).ctypes.data
        a = np.from_dlpack(rx)  # numpy 2.x asks for a versioned capsule
        b = np.from_dlpack(Legacy(rx))
    assert a.ctypes.data == base and b.ctypes.data == base
    assert in_mapping(base, 64)
    assert a.tolist() == list(range(64)) and b.tolist() == list(range(64))
    assert not a.flags.writeable  # READ_ONLY honoured
    numpy_version = tuple(int(x) for x in np.__version__.split(".")[:2])
    if numpy_version >= (2, 2):
        # numpy >= 2.3 makes legacy imports read-only; so does 2.2.6 (the newest for
        # Python 3.10), earlier than docs/PYTHON_API.md ("DLPack") expects
        assert not b.flags.writeable
    else:
        print(f"numpy {np.__version__}: legacy import writeable={b.flags.writeable}")
    with pytest.raises(ValueError):
        a[0] = 1
    del a, b
    assert cons.stats.pinned_bytes == 0


@needs_torch
def test_torch_in_place_and_read_only_ignored(pair):
    prod, cons = pair
    prod.send(bytes(range(16)))
    with cons.drain_batch(timeout=1) as batch:
        view = batch[0]
        with memoryview(view) as mv:
            base = np.frombuffer(mv, dtype=np.uint8).ctypes.data
        t = torch.from_dlpack(view)
        t_legacy = torch.from_dlpack(Legacy(view))
    assert t.data_ptr() == base and t_legacy.data_ptr() == base and in_mapping(base, 16)
    assert t.dtype == torch.uint8 and t.tolist() == list(range(16))
    # torch ignores READ_ONLY: the tensor is writable; a write changes only our view of the slot
    t[0] = 200
    assert t_legacy[0].item() == 200
    del t, t_legacy
    assert cons.stats.pinned_bytes == 0


@needs_torch
def test_deleter_exactly_once(pair):
    prod, cons = pair
    created0, deleted0 = counters()
    for i in range(20):
        prod.send(bytes([i]) * 32)
        with cons.recv_zero_copy(timeout=1) as rx:
            a = np.from_dlpack(rx)
            t = torch.from_dlpack(rx)
            unused = rx.__dlpack__(max_version=(1, 0))  # never consumed: the capsule destructor deletes
            legacy_unused = rx.__dlpack__()
        assert a[0] == i and t[0].item() == i
        del a, t, unused, legacy_unused
    created, deleted = counters()
    assert created - created0 == 80
    assert deleted - deleted0 == 80
    assert cons.stats.pinned_bytes == 0


def test_capsule_destructor_keeps_pending_exception(pair):
    prod, cons = pair
    prod.send(b"x" * 8)
    with cons.recv_zero_copy(timeout=1) as rx:
        cap = rx.__dlpack__(max_version=(1, 0))
    with pytest.raises(KeyError, match="kept"):
        try:
            raise KeyError("kept")
        finally:
            del cap  # destructor runs while KeyError is being raised
    assert cons.stats.pinned_bytes == 0


HELPER = r"""
#include <pthread.h>
#include <stddef.h>
struct call { void *managed; int versioned; };
static void *run(void *p)
{
    struct call *c = p;
    /* deleter at offset 16 (versioned) or 56 (legacy), see docs/PYTHON_API.md, "DLPack" */
    void (*deleter)(void *);
    deleter = *(void (**)(void *))((char *)c->managed + (c->versioned ? 16 : 56));
    deleter(c->managed);
    return NULL;
}
int call_deleter_in_thread(void *managed, int versioned)
{
    pthread_t t;
    struct call c = {managed, versioned};
    if (pthread_create(&t, NULL, run, &c) != 0)
        return -1;
    return pthread_join(t, NULL);
}
"""


@pytest.fixture(scope="module")
def c_thread_helper(tmp_path_factory):
    d = tmp_path_factory.mktemp("dlhelper")
    src, lib = d / "helper.c", d / "helper.so"
    src.write_text(HELPER)
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-pthread", str(src), "-o", str(lib)], check=True)
    h = ctypes.CDLL(str(lib))  # CDLL releases the GIL during the call
    h.call_deleter_in_thread.argtypes = [ctypes.c_void_p, ctypes.c_int]
    h.call_deleter_in_thread.restype = ctypes.c_int
    return h


@pytest.mark.parametrize("versioned", [True, False])
def test_deleter_from_c_thread(pair, c_thread_helper, versioned):
    """A consumer that owns the capsule calls the deleter from a thread that never ran Python."""
    prod, cons = pair
    prod.send(b"y" * 100)
    created0, deleted0 = counters()
    with cons.recv_zero_copy(timeout=1) as rx:
        cap = rx.__dlpack__(max_version=(1, 0) if versioned else None)
    name = b"dltensor_versioned" if versioned else b"dltensor"
    managed = _GetPointer(cap, name)
    assert _SetName(cap, b"used_" + name) == 0  # consumed: the capsule will not delete
    assert cons.stats.pinned_bytes > 0  # the export pins the slot
    assert c_thread_helper.call_deleter_in_thread(managed, int(versioned)) == 0
    del cap  # renamed: its destructor does nothing
    assert counters() == (created0 + 1, deleted0 + 1)
    assert cons.stats.pinned_bytes == 0


@needs_torch
def test_torch_tensor_freed_in_python_thread(pair):
    prod, cons = pair
    prod.send(b"z" * 64)
    with cons.recv_zero_copy(timeout=1) as rx:
        box = [torch.from_dlpack(rx)]
    assert cons.stats.pinned_bytes > 0
    t = threading.Thread(target=box.clear)
    t.start()
    t.join()
    assert cons.stats.pinned_bytes == 0


@needs_torch
def test_tensor_outliving_with_keeps_its_slot(pair):
    """R10: the slot is not reused while the tensor lives; later messages still flow."""
    prod, cons = pair  # capacity 4096
    prod.send(b"A" * 1000, type_id=1)
    with cons.recv_zero_copy(timeout=1) as rx:
        tensor = torch.from_dlpack(rx)
        array = np.from_dlpack(rx)
        mv = memoryview(rx)
    ptr = tensor.data_ptr()
    # the consumer keeps reading later messages while the first slot is pinned
    sent = 0
    while True:
        try:
            prod.send(b"B" * 1000, type_id=2)
        except tachyon.BusFullError:
            break
        sent += 1
        msg = cons.recv(timeout=1)
        assert msg.data == b"B" * 1000
        assert sent < 100, "the producer never ran out of room: the pinned slot was reused"
    assert bytes(tensor.numpy()) == b"A" * 1000 and bytes(array) == b"A" * 1000 and mv == b"A" * 1000
    assert tensor.data_ptr() == ptr
    assert cons.stats.pinned_bytes >= 1024
    del tensor, array
    assert cons.stats.pinned_bytes >= 1024  # the memoryview still holds it
    mv.release()
    assert cons.stats.pinned_bytes == 0
    # the release is published at once: the producer has room again without a consumer call
    prod.send(b"C" * 1000)
    assert cons.recv(timeout=1).data == b"C" * 1000
    print(f"sent {sent} messages past the pinned slot before the ring filled")


@needs_torch
def test_close_with_live_exports(pair):
    prod, cons = pair
    prod.send(b"keep" * 10)
    with cons.recv_zero_copy(timeout=1) as rx:
        t = torch.from_dlpack(rx)
        a = np.from_dlpack(rx)
    cons.close()  # always succeeds; the mapping stays while exports live
    prod.close()
    del cons, rx
    import gc
    gc.collect()
    assert bytes(t.numpy()) == b"keep" * 10 and bytes(a) == b"keep" * 10
    del t, a


@pytest.mark.parametrize("lib", [pytest.param("torch", marks=[pytest.mark.torch, _skip_without_torch]), "numpy"])
def test_exports_alive_at_interpreter_exit(lib):
    from conftest import run_isolated

    proc = run_isolated("dlpack_at_exit.py", lib)
    assert proc.stdout.strip() == "exiting with live exports"
    assert "Fatal" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
