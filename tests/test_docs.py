"""The docs name things that exist: every test docs/RELIABILITY.md cites as a
proof is there, every promise has one, and relative links between the docs
resolve. A renamed or deleted test fails here instead of leaving a promise
without its proof."""
import re

from conftest import REPO

DOCS = REPO / "docs"
# `tests/x.py::name`, `csrc/tests/x.c::name`, or a whole file `csrc/...`
REF = re.compile(r"`((?:tests|csrc)/[\w./-]+)(?:::(\w+))?`")


def defines(path, name):
    text = path.read_text()
    if path.suffix == ".py":
        return re.search(rf"^\s*def {name}\(", text, re.M) is not None
    # a C function definition starts at column 0: "static void name(" or "int name("
    return re.search(rf"^[A-Za-z_][\w \t*]*\b{name}\(", text, re.M) is not None


def test_every_promise_names_existing_tests():
    text = (DOCS / "RELIABILITY.md").read_text()
    sections = re.split(r"^\*\*R(\d+)\.", text, flags=re.M)
    numbers = sections[1::2]
    assert numbers == [str(i) for i in range(1, 16)], "R1..R15, in order, each once"
    problems = []
    for number, body in zip(numbers, sections[2::2]):
        refs = REF.findall(body)
        if not refs:
            problems.append(f"R{number} names no test")
        for rel, name in refs:
            path = REPO / rel
            if not path.is_file():
                problems.append(f"R{number}: {rel} does not exist")
            elif name and not defines(path, name):
                problems.append(f"R{number}: {rel} defines no {name}")
    assert not problems, "\n".join(problems)


def test_relative_links_resolve():
    broken = []
    for doc in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.name} -> {target}")
    assert not broken, broken
