"""One version: TACHYON_VERSION_STRING in csrc/include/tachyon/tachyon.h.

setup.py reads it for the package metadata (pyproject.toml declares the
version dynamic); every other spelling is checked equal to it here."""
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tachyon
from conftest import REPO

HEADER = REPO / "csrc" / "include" / "tachyon" / "tachyon.h"


def header_version():
    m = re.search(r'^#define\s+TACHYON_VERSION_STRING\s+"([^"]+)"', HEADER.read_text(), re.M)
    assert m, f"no TACHYON_VERSION_STRING in {HEADER}"
    return m.group(1)


def test_header_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", header_version())


def test_package_and_extension_agree_with_the_header():
    assert tachyon.__version__ == header_version()
    # The extension may carry its own copy (the header's macro compiled in).
    assert getattr(tachyon._core, "__version__", tachyon.__version__) == header_version()


def test_pyproject_has_no_version_of_its_own():
    text = (REPO / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "pyproject.toml spells the version again"
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', project, re.M)


def _release(version):
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def test_metadata_version_comes_from_the_header():
    setuptools = pytest.importorskip("setuptools", reason="setup.py needs setuptools to report the metadata version")
    needed = re.search(r'"setuptools>=([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    if _release(setuptools.__version__) < _release(needed):
        # pip's isolated build fetches a new enough one; a bare venv may carry an old copy.
        pytest.skip(f"setuptools {setuptools.__version__} here; pyproject.toml needs >= {needed}")
    out = subprocess.run([sys.executable, "setup.py", "--version"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip().splitlines()[-1] == header_version()


def test_installed_metadata_matches_when_installed():
    """When the imported package is an installed distribution (not a source
    tree on sys.path), its metadata carries the header's version too."""
    try:
        dist = importlib.metadata.distribution("tachyon-ipc")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tachyon-ipc is not installed: the tests import the source tree")
    installed = Path(dist.locate_file("tachyon")).resolve()
    if installed != Path(tachyon.__file__).resolve().parent:
        pytest.skip(f"the imported tachyon ({tachyon.__file__}) is not the installed one ({installed})")
    assert dist.version == header_version()
