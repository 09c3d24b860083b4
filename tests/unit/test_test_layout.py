"""The test suite's own layout (issue 13): what tests share lives in tests/helpers (conftest
modules hold fixtures, nothing imports them), one ``free_port``, and unit tests read no
third-party sample files (those tests are integration tests)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
NET = TESTS / "helpers" / "net.py"


def modules(under: Path = TESTS) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(under.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path.relative_to(TESTS).as_posix(), ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module and name an import statement names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def test_no_module_imports_from_a_conftest_module() -> None:
    found: dict[str, str] = {}  # one entry per import statement
    for rel, tree in modules():
        package = "tests." + ".".join(Path(rel).parent.parts)
        for line, name in imported(tree, package.rstrip(".")):
            if "conftest" in name.split("."):
                found.setdefault(f"{rel}:{line}", f"{rel}:{line} imports {name}")
    assert list(found.values()) == [], \
        "import shared code from tests/helpers, not from a conftest:\n" + "\n".join(found.values())


def binds_port_zero(node: ast.AST) -> bool:
    """``x.bind((host, 0))``: a free-port helper under another name."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "bind" and len(node.args) == 1
            and isinstance(node.args[0], ast.Tuple) and len(node.args[0].elts) == 2
            and isinstance(node.args[0].elts[1], ast.Constant)
            and node.args[0].elts[1].value == 0)


def test_free_port_is_defined_once_in_tests_helpers_net() -> None:
    found = []
    for rel, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                    and node.name.endswith("free_port"):
                found.append(f"{rel}: def {node.name}")
            elif binds_port_zero(node) and rel != "helpers/net.py":
                found.append(f"{rel}:{getattr(node, 'lineno', '?')} binds port 0")
    assert found == ["helpers/net.py: def free_port"], \
        "use tests.helpers.net.free_port:\n" + "\n".join(found)
    assert NET.exists()


def real_data_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if arg.arg == "real":
                    yield node.lineno, f"{node.name} takes the 'real' fixture"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("getfixturevalue", "usefixtures") \
                and any(isinstance(a, ast.Constant) and a.value == "real" for a in node.args):
            yield node.lineno, "asks for the 'real' fixture"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and ("shared" in node.value.split("/") or "data/real" in node.value):
            yield node.lineno, f"names the shared data folder ({node.value!r})"
        elif isinstance(node, ast.Name | ast.alias) \
                and getattr(node, "id", getattr(node, "name", "")) == "REAL":
            yield getattr(node, "lineno", 0), "uses REAL, the sample data folder"


def test_unit_tests_read_no_third_party_sample_files() -> None:
    found = [f"{rel}:{line} {what}" for rel, tree in modules(TESTS / "unit")
             if rel != "unit/test_test_layout.py"  # names what it looks for
             for line, what in real_data_uses(tree)]
    assert found == [], "tests of real files belong in tests/integration:\n" + "\n".join(found)


def test_the_checks_see_what_they_look_for() -> None:
    """The checks above are not vacuous: each flags a module that breaks its rule."""
    bad = ast.parse(
        "from tests.integration.api.conftest import Api\n"
        "from . import conftest\n"
        "import socket\n"
        "def test_x(real):\n"
        "    socket.socket().bind(('127.0.0.1', 0))\n"
        "    return REPO.parent / 'shared' / 'data' / 'real'\n")
    names = [name for _, name in imported(bad, "tests.unit")]
    assert "tests.integration.api.conftest.Api" in names
    assert "tests.unit.conftest" in names
    assert any(binds_port_zero(n) for n in ast.walk(bad))
    whats = [what for _, what in real_data_uses(bad)]
    assert any("'real' fixture" in w for w in whats)
    assert any("shared data folder" in w for w in whats)
