"""``plexhub validation-pack``: the document that maps each requirement
(``policies/requirements.py``) to the tests that prove it and their last result.

Tests are found by reading the test files (``@pytest.mark.requirement("ID", ...)`` on a test
function, or ``pytestmark = pytest.mark.requirement(...)`` for a whole module), without
importing or running them. Results come from a JUnit XML report (``pytest
--junitxml=FILE``) when one is given: a test passes when every one of its parametrised cases
passed; without a report every result is "not run".
"""

from __future__ import annotations

import argparse
import ast
import sys
import xml.etree.ElementTree as ET  # our own CI's report, not hostile input
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from plexhub import __version__
from plexhub.errors import InputError
from plexhub.policies.requirements import REQUIREMENTS

MARK = "requirement"


@dataclass(frozen=True)
class Claim:
    """A test (``tests/x/test_y.py::test_z``) and the requirements it claims."""

    test: str
    requirements: tuple[str, ...]


def _marked(node: ast.expr) -> tuple[str, ...] | None:
    """The requirement ids of ``pytest.mark.requirement("a", "b")``; None for another node."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == MARK):
        return None
    return tuple(a.value for a in node.args
                 if isinstance(a, ast.Constant) and isinstance(a.value, str))


def claims_in(path: Path, root: Path) -> list[Claim]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    module: tuple[str, ...] = ()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) \
                else [node.value]
            for v in values:
                module += _marked(v) or ()
    rel = path.relative_to(root.parent).as_posix()
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            own: tuple[str, ...] = ()
            for d in node.decorator_list:
                own += _marked(d) or ()
            if own or module:
                out.append(Claim(f"{rel}::{node.name}", module + own))
    return out


def collect(tests_dir: Path) -> list[Claim]:
    """Every claim in ``tests_dir`` (its ``test_*.py`` files)."""
    if not tests_dir.is_dir():
        raise InputError(f"tests folder {tests_dir}", "does not exist",
                         "pass --tests with the repository's tests folder")
    return [c for p in sorted(tests_dir.rglob("test_*.py")) for c in claims_in(p, tests_dir)]


def results(junit: Path) -> dict[str, str]:
    """``path::test`` -> passed | failed | skipped, from a JUnit XML report (parametrised
    cases folded: any failure fails the test, all skipped skips it)."""
    cases: dict[str, list[str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        name = case.get("name", "").split("[", 1)[0]
        # classname "tests.unit.test_x" (a function) or "tests.unit.test_x.TestClass"
        while module and not module[-1].startswith("test_"):
            module.pop()
        key = "/".join(module) + ".py::" + name
        outcome = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        cases.setdefault(key, []).append(outcome)
    return {k: ("failed" if "failed" in v else "skipped" if set(v) == {"skipped"}
                else "passed") for k, v in cases.items()}


def mapping(claims: Sequence[Claim]) -> dict[str, list[str]]:
    """Requirement id -> the tests that claim it (unknown ids under their own name)."""
    out: dict[str, list[str]] = {r: [] for r in REQUIREMENTS}
    for c in claims:
        for r in c.requirements:
            out.setdefault(r, []).append(c.test)
    return out


def _status(tests: Sequence[str], outcome: Mapping[str, str] | None) -> str:
    if not tests:
        return "NO TEST"
    if outcome is None:
        return "not run"
    got = [outcome.get(t, "not run") for t in tests]
    for word in ("failed", "not run", "skipped"):
        if word in got:
            return word
    return "passed"


def rows(claims: Sequence[Claim], outcome: Mapping[str, str] | None
         ) -> list[tuple[str, str, list[tuple[str, str]], str]]:
    """(requirement, description, [(test, its result)], overall) per requirement."""
    found = mapping(claims)
    return [(r, REQUIREMENTS.get(r, "UNKNOWN requirement"),
             [(t, outcome.get(t, "not run") if outcome is not None else "not run")
              for t in tests], _status(tests, outcome))
            for r, tests in found.items()]


def markdown(claims: Sequence[Claim], outcome: Mapping[str, str] | None,
             source: str) -> str:
    lines = [f"# plexhub {__version__}: validation pack", "",
             f"Requirements (policies/requirements.py) and the tests that prove them. "
             f"Results: {source}.", "",
             "| requirement | what it demands | tests | result |", "| --- | --- | --- | --- |"]
    for r, text, tests, status in rows(claims, outcome):
        cell = "<br>".join(f"`{t}` ({res})" for t, res in tests) or "none"
        lines.append(f"| `{r}` | {text} | {cell} | **{status}** |")
    return "\n".join(lines) + "\n"


def html(claims: Sequence[Claim], outcome: Mapping[str, str] | None, source: str) -> str:
    body = "".join(
        f"<tr><td><code>{escape(r)}</code></td><td>{escape(text)}</td><td>"
        + "<br>".join(f"<code>{escape(t)}</code> ({escape(res)})" for t, res in tests)
        + f"</td><td><strong>{escape(status)}</strong></td></tr>"
        for r, text, tests, status in rows(claims, outcome))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>plexhub "
            f"{escape(__version__)}: validation pack</title></head><body><main>"
            f"<h1>plexhub {escape(__version__)}: validation pack</h1>"
            f"<p>Results: {escape(source)}.</p><table><thead><tr><th>requirement</th>"
            f"<th>what it demands</th><th>tests</th><th>result</th></tr></thead>"
            f"<tbody>{body}</tbody></table></main></body></html>\n")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tests", type=Path, default=Path("tests"),
                   help="the repository's tests folder (default: ./tests)")
    p.add_argument("--junit", type=Path, default=None,
                   help="a JUnit XML report of the last run (pytest --junitxml=FILE)")
    p.add_argument("--format", choices=("md", "html"), default="md")
    p.add_argument("--out", type=Path, default=None, help="write here (default: stdout)")


def cmd_validation_pack(args: argparse.Namespace) -> int:
    """Write the pack; exit 1 when a requirement has no test or a test failed."""
    claims = collect(args.tests)
    outcome = results(args.junit) if args.junit is not None else None
    source = f"JUnit report {args.junit}" if args.junit is not None else "none given (not run)"
    text = (html if args.format == "html" else markdown)(claims, outcome, source)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    bad = [r for r, _, _, status in rows(claims, outcome) if status in ("NO TEST", "failed")]
    if bad:
        print(f"plexhub: requirements without a passing proof: {', '.join(bad)}",
              file=sys.stderr)
    return 1 if bad else 0
