"""Build of tachyon._core: the C core (csrc/core) and the CPython extension (csrc/ext).

Environment switches (all optional; nothing is downloaded):
  TACHYON_DEBUG=1             -O0 -g instead of -O2
  TACHYON_SANITIZE=address    AddressSanitizer build (run with LD_PRELOAD=$(gcc -print-file-name=libasan.so))
  TACHYON_NATIVE=1            -march=native (never on by default: wheels must run on any x86-64 / aarch64)
"""
import glob
import os

from setuptools import Extension, setup


def _sources():
    core = sorted(glob.glob("csrc/core/*.c"))
    ext = sorted(glob.glob("csrc/ext/*.c"))
    if not core or not ext:
        raise SystemExit("csrc/core/*.c or csrc/ext/*.c not found: run the build from the checkout root")
    return core + ext


def _flags():
    cflags = [
        "-std=c11",
        "-D_GNU_SOURCE",
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-Wno-missing-field-initializers",
    ]
    ldflags = []
    sanitize = os.environ.get("TACHYON_SANITIZE", "")
    if os.environ.get("TACHYON_DEBUG") == "1":
        cflags += ["-O0", "-g", "-UNDEBUG"]
    elif sanitize:
        cflags += ["-O2"]
    else:
        # Link-time optimisation lets the bus calls inline the ring-end calls
        # they wrap (reserve, peek, release live in another file): in C about
        # a quarter fewer instructions a message, 5-10% on the extension's
        # calls (callgrind).
        cflags += ["-O2", "-flto=auto"]
        ldflags += ["-O2", "-flto=auto"]
    if sanitize:
        if sanitize != "address":
            raise SystemExit("TACHYON_SANITIZE supports only 'address'")
        cflags += ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]
        ldflags += ["-fsanitize=address"]
    if os.environ.get("TACHYON_NATIVE") == "1":
        cflags += ["-march=native"]
    return cflags, ldflags


_cflags, _ldflags = _flags()

setup(
    ext_modules=[
        Extension(
            "tachyon._core",
            sources=_sources(),
            include_dirs=["csrc/include", "csrc/core"],
            depends=sorted(glob.glob("csrc/include/tachyon/*.h") + glob.glob("csrc/core/*.h") + glob.glob("csrc/ext/*.h")),
            extra_compile_args=_cflags,
            extra_link_args=_ldflags,
            libraries=["pthread"],
        )
    ],
)
