"""The validation pack (issue 14): every requirement has a test that claims it, every claim
names a known requirement, every profile rule is a requirement; ``plexhub validation-pack``
folds a JUnit report's parametrised cases into one result per test and exits 1 while a
requirement lacks a passing proof."""

from __future__ import annotations

from pathlib import Path

import pytest

from plexhub.api.validationpack import collect, mapping, results
from plexhub.cli import main
from plexhub.policies.profiles import RULES
from plexhub.policies.requirements import REQUIREMENTS

TESTS = Path(__file__).resolve().parents[1]


def test_the_mapping_is_complete() -> None:
    found = mapping(collect(TESTS))
    assert sorted(r for r in found if r not in REQUIREMENTS) == []  # no unknown claims
    assert sorted(r for r, tests in found.items() if not tests) == []  # no untested one
    assert {f"profile.{rule}" for rule in RULES} <= REQUIREMENTS.keys()
    assert "tests/integration/api/test_signatures.py::test_a_signature_cannot_be_copied_to_" \
        "another_object" in found["signature.binding"]


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.t.test_a" name="test_ok[sqlite]"/>
<testcase classname="tests.t.test_a" name="test_ok[postgresql]"/>
<testcase classname="tests.t.test_a" name="test_bad[sqlite]"/>
<testcase classname="tests.t.test_a" name="test_bad[postgresql]"><failure message="x"/></testcase>
</testsuite></testsuites>"""

MODULE = '''import pytest

pytestmark = pytest.mark.requirement("audit.chain")


@pytest.mark.requirement("study.lock")
def test_ok():
    pass


def test_bad():
    pass
'''


def test_the_pack_shows_each_result_and_fails_without_proof(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = tmp_path / "tests"
    (tests / "t").mkdir(parents=True)
    (tests / "t" / "test_a.py").write_text(MODULE)
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    assert results(junit) == {"tests/t/test_a.py::test_ok": "passed",
                              "tests/t/test_a.py::test_bad": "failed"}
    out = tmp_path / "pack.md"
    code = main(["validation-pack", "--tests", str(tests), "--junit", str(junit),
                 "--out", str(out)])
    assert code == 1
    text = out.read_text()
    assert ("| `study.lock` | " in text)
    assert "`tests/t/test_a.py::test_ok` (passed) | **passed** |" in text
    assert "`tests/t/test_a.py::test_bad` (failed) | **failed** |" in text
    assert "| `signature.binding` | " in text
    assert "| none | **NO TEST** |" in text
    err = capsys.readouterr().err
    assert "requirements without a passing proof: " in err
    assert "audit.chain" in err
    code = main(["validation-pack", "--tests", str(tests), "--format", "html",
                 "--out", str(tmp_path / "pack.html")])
    assert code == 1
    page = (tmp_path / "pack.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "<code>tests/t/test_a.py::test_ok</code> (not run)" in page


def test_the_repositorys_pack_lists_every_requirement(tmp_path: Path) -> None:
    out = tmp_path / "pack.md"
    assert main(["validation-pack", "--tests", str(TESTS), "--out", str(out)]) == 0
    text = out.read_text()
    for r in REQUIREMENTS:
        assert f"| `{r}` |" in text
