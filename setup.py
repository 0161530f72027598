"""Build of tachyon._core: the C core (csrc/core) and the CPython extension (csrc/ext).

The compiler flags come from csrc/flags.mk, the one definition shared with
the C Makefiles; the version comes from TACHYON_VERSION_STRING in
csrc/include/tachyon/tachyon.h, the one place it is written.

Environment switches (all optional; nothing is downloaded):
  TACHYON_DEBUG=1          the debug flavour: -O0, assertions on
  TACHYON_SANITIZE=asan    AddressSanitizer + UBSan ("address" is accepted too);
                           run with LD_PRELOAD=$(gcc -print-file-name=libasan.so)
  TACHYON_SANITIZE=tsan    ThreadSanitizer ("thread" too); LD_PRELOAD libtsan.so
  TACHYON_NATIVE=1         -march=native (never on by default: wheels must run on any x86-64 / aarch64)
"""
import glob
import os
import re

from setuptools import Extension, setup

FLAGS_FILE = "csrc/flags.mk"
VERSION_HEADER = "csrc/include/tachyon/tachyon.h"

_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:=\s*(.*)")
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def read_flags(path=FLAGS_FILE):
    """The `NAME := words` lines of flags.mk as {NAME: [words]}.

    Understands only what flags.mk promises to contain; any other line is an
    error here rather than a flag silently lost between Make and Python."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = _ASSIGN.fullmatch(line)
            if not m:
                raise SystemExit(f"{path}:{lineno}: not a 'NAME := words' line: {line}")

            def expand(ref, lineno=lineno):
                if ref.group(1) not in names:
                    raise SystemExit(f"{path}:{lineno}: $({ref.group(1)}) is used before it is assigned")
                return names[ref.group(1)]

            names[m.group(1)] = _REF.sub(expand, m.group(2)).strip()
    return {k: v.split() for k, v in names.items()}


def read_version(path=VERSION_HEADER):
    with open(path, encoding="utf-8") as f:
        m = re.search(r'^#define\s+TACHYON_VERSION_STRING\s+"([^"]+)"', f.read(), re.M)
    if not m:
        raise SystemExit(f"{path}: no TACHYON_VERSION_STRING")
    return m.group(1)


def _flavour():
    sanitize = os.environ.get("TACHYON_SANITIZE", "")
    aliases = {"": None, "asan": "asan", "address": "asan", "tsan": "tsan", "thread": "tsan"}
    if sanitize not in aliases:
        raise SystemExit(f"TACHYON_SANITIZE={sanitize!r}: use asan (address + undefined) or tsan (thread)")
    if aliases[sanitize]:
        return aliases[sanitize]
    return "debug" if os.environ.get("TACHYON_DEBUG") == "1" else "release"


def _sources():
    core = sorted(glob.glob("csrc/core/*.c"))
    ext = sorted(glob.glob("csrc/ext/*.c"))
    if not core or not ext:
        raise SystemExit("csrc/core/*.c or csrc/ext/*.c not found: run the build from the checkout root")
    return core + ext


def _extension():
    flags = read_flags()
    flavour = _flavour()
    cflags = flags[f"TACHYON_CFLAGS_{flavour}"]
    ldflags = flags[f"TACHYON_LDFLAGS_{flavour}"]
    if os.environ.get("TACHYON_NATIVE") == "1":
        cflags = cflags + flags["TACHYON_NATIVE"]
    return Extension(
        "tachyon._core",
        sources=_sources(),
        # Only the public header directory: the extension reaches the core
        # through tachyon/tachyon.h and cannot include its private headers.
        # (The core's own .c files find theirs next to them.)
        include_dirs=["csrc/include"],
        depends=sorted(glob.glob("csrc/include/tachyon/*.h") + glob.glob("csrc/core/*.h")
                       + glob.glob("csrc/ext/*.h") + [FLAGS_FILE]),
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        libraries=["pthread"],
    )


if __name__ == "__main__":
    setup(version=read_version(), ext_modules=[_extension()])
