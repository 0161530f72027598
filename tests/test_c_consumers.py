"""C and C++ programs use the library the way its README says: `cmake
--install` puts headers, libtachyon.a, libtachyon.so, a CMake package and
tachyon.pc under a prefix; the C++ example builds out of tree against that
prefix (find_package, and pkg-config against the shared library) and against
the source tree (add_subdirectory), and each build talks to a Python
consumer across two processes. The C example's tensor frames reach a Python
consumer as the arrays the C program wrote."""
import zlib
import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, isolated_env

EXAMPLE = REPO / "examples" / "cpp"
C_EXAMPLE = REPO / "examples" / "c"
COUNT = 5
EXPECTED = "".join(f"type_id={i} data=reading {i * i}\n" for i in range(COUNT))


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def cmake():
    exe = shutil.which("cmake")
    if exe is None:
        pytest.fail("cmake is not installed: the test extra installs it (pip install -e '.[test]')")
    return exe


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """The library configured, built and installed once for this module."""
    root = tmp_path_factory.mktemp("cmake")
    build, prefix = root / "build", root / "prefix"
    run([cmake(), "-S", str(REPO), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}"])
    run([cmake(), "--build", str(build), "-j2"])
    run([cmake(), "--install", str(build)])
    return prefix


def libdir(prefix):
    return next(d for d in (prefix / "lib", prefix / "lib64") if (d / "libtachyon.a").exists())


def talks_to_python(sender, env_extra=None):
    env = isolated_env()
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "receive.py"), str(sender), str(COUNT)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout == EXPECTED
    assert proc.stderr == ""


def test_install_layout(prefix):
    lib = libdir(prefix)
    for rel in ["include/tachyon/tachyon.h", "include/tachyon/wire.h"]:
        assert (prefix / rel).is_file(), rel
    for name in ["libtachyon.a", "libtachyon.so", "pkgconfig/tachyon.pc", "cmake/tachyon/tachyonConfig.cmake",
                 "cmake/tachyon/tachyonConfigVersion.cmake"]:
        assert (lib / name).exists(), name
    # The shared library exports the API of tachyon.h and nothing private.
    dynsyms = run(["nm", "-D", "--defined-only", str(lib / "libtachyon.so")]).stdout.split()
    assert "tachyon_bus_connect" in dynsyms and "tachyon_strerror" in dynsyms
    private = [s for s in dynsyms if s.startswith("tachyon_") and s in ("tachyon_futex_wait", "tachyon_copy_large")]
    assert not private, f"private functions exported: {private}"


def test_find_package_static(prefix, tmp_path):
    build = tmp_path / "build"
    run([cmake(), "-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}"])
    run([cmake(), "--build", str(build)])
    talks_to_python(build / "sender")


def test_pkg_config_shared(prefix, tmp_path):
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed (Debian: apt-get install pkg-config)")
    lib = libdir(prefix)
    env = dict(os.environ, PKG_CONFIG_PATH=str(lib / "pkgconfig"))
    flags = run(["pkg-config", "--cflags", "--libs", "tachyon"], env=env).stdout.split()
    sender = tmp_path / "sender"
    run(["c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", str(EXAMPLE / "sender.cpp"), *flags, "-o", str(sender)])
    linked = run(["ldd", str(sender)], env=dict(os.environ, LD_LIBRARY_PATH=str(lib))).stdout
    assert str(lib / "libtachyon.so") in linked, linked
    talks_to_python(sender, {"LD_LIBRARY_PATH": str(lib)})


def test_add_subdirectory(tmp_path):
    project = tmp_path / "app"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "project(app LANGUAGES C CXX)\n"
        f'add_subdirectory("{REPO}" tachyon)\n'
        f'add_executable(sender "{EXAMPLE / "sender.cpp"}")\n'
        "target_compile_features(sender PRIVATE cxx_std_17)\n"
        "target_link_libraries(sender PRIVATE tachyon::tachyon)\n"
    )
    build = tmp_path / "build"
    run([cmake(), "-S", str(project), "-B", str(build)])
    run([cmake(), "--build", str(build), "--target", "sender", "-j2"])
    talks_to_python(build / "sender")


def test_lto_archive_links_cleanly(tmp_path):
    """The optimised archive (`make -C csrc lib`, built with LTO) links into
    a program that listens and connects without a single warning: link-time
    flow analysis runs again in the user's link, where a false positive
    would greet every C user."""
    run(["make", "-s", "-C", str(REPO / "csrc"), "FLAVOUR=release", "lib"])
    program = tmp_path / "app.c"
    program.write_text(
        '#include "tachyon/tachyon.h"\n'
        "#include <stdio.h>\n"
        "int main(int argc, char **argv) {\n"
        "    tachyon_wait w = {.deadline_ns = tachyon_deadline_after(1000000)};\n"
        "    tachyon_bus *b = NULL;\n"
        "    int rc = argc > 1 ? tachyon_bus_listen(argv[1], 1 << 16, NULL, &w, &b)\n"
        '                      : tachyon_bus_connect("/nonexistent/x.sock", &w, &b);\n'
        '    printf("%d %s\\n", rc, tachyon_handshake_detail());\n'
        "    return 0;\n"
        "}\n"
    )
    archive = REPO / "build" / "csrc" / "release" / "libtachyon.a"
    proc = run(["cc", "-std=c11", "-O2", "-flto=auto", "-Wall", "-Wextra", f"-I{REPO / 'csrc' / 'include'}",
                str(program), str(archive), "-lpthread", "-o", str(tmp_path / "app")])
    assert proc.stderr == "", proc.stderr
    out = run([str(tmp_path / "app")]).stdout
    assert out.startswith(f"-{errno.ETIMEDOUT} nothing appeared at"), out


def frame_line(type_id, a):
    return (f"type_id={type_id} dtype={a.dtype} shape={a.shape} "
            f"sum={a.sum(dtype='float64'):.1f} crc32={zlib.crc32(a):08x}\n")


def expected_frames():
    """What receive_frames.py prints, computed from the arrays that
    frame_producer.c's comments promise: three float32 matrices
    (k + 1) * (i * 4 + j) * 0.5 and a 480x640x3 test pattern."""
    lines = []
    for k in range(3):
        m = np.float32(k + 1) * np.arange(12, dtype=np.float32).reshape(3, 4) * np.float32(0.5)
        lines.append(frame_line(1, m))
    image = np.empty((480, 640, 3), dtype=np.uint8)
    image[..., 0] = (np.arange(640) % 256)[None, :]
    image[..., 1] = (np.arange(480) % 256)[:, None]
    image[..., 2] = 200
    lines.append(frame_line(2, image))
    return "".join(lines)


def test_c_frame_producer(prefix, tmp_path):
    """examples/c: a C program builds tensor frames in place in the ring
    with the tachyon_tensor_frame_* helpers; the Python consumer reads each
    with .array() and gets the dtype, shape and bytes the C program wrote.
    Built warning-free with find_package against the installed library."""
    build = tmp_path / "build"
    run([cmake(), "-S", str(C_EXAMPLE), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}",
         "-DCMAKE_C_FLAGS=-Wall -Wextra -Wpedantic -Werror"])
    run([cmake(), "--build", str(build)])
    proc = subprocess.run(
        [sys.executable, str(C_EXAMPLE / "receive_frames.py"), str(build / "frame_producer")],
        capture_output=True, text=True, timeout=60, env=isolated_env(),
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout == expected_frames()
    assert proc.stderr == ""
