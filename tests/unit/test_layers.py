"""The layers kept by a tool, not by hand: pyproject's import-linter contracts cover every core
module, and no package imports another package's ``_private`` names. The layout: no folder of
the checkout is named ``plexhub``, so the checkout on ``sys.path`` never shadows an installed
copy (``scripts/test_wheel.sh`` runs tests against one)."""

from __future__ import annotations

import ast
import os
import site
import sysconfig
import tomllib
from pathlib import Path

import plexhub

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"ome_pipeline": "plexhub.ome_pipeline", "api": "plexhub.api",
            "widgets": "plexhub.widgets", "hub": "plexhub.hub", "policies": "plexhub.policies",
            "extensions": "plexhub.extensions", "core": "plexhub"}


def _contracts() -> dict[str, dict[str, object]]:
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {c["name"]: c for c in doc["tool"]["importlinter"]["contracts"]}


def test_every_core_module_is_in_the_core_contract() -> None:
    core = next(c for name, c in _contracts().items() if name.startswith("the core"))
    listed = set(core["source_modules"])  # type: ignore[call-overload]
    on_disk = {f"plexhub.{p.stem}" for p in (REPO / "core").glob("*.py")
               if p.stem != "__init__"}
    assert on_disk == listed


def test_no_private_name_crosses_a_package() -> None:
    offences = []
    for folder, dotted in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            here = dotted.split(".")[1] if "." in dotted else "plexhub"
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.module
                        and node.module.startswith("plexhub.")):
                    continue
                there = node.module.split(".")[1]
                there = there if there in PACKAGES else "plexhub"
                private = [a.name for a in node.names if a.name.startswith("_")
                           and not a.name.startswith("__")]
                if private and there != here:
                    offences.append(f"{path.relative_to(REPO)}: {node.module} {private}")
    assert offences == []


def test_no_folder_of_the_checkout_shadows_the_package() -> None:
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = doc["tool"]["setuptools"]["package-dir"].values()
    assert "plexhub" not in folders
    assert not (REPO / "plexhub").exists(), \
        "a plexhub/ folder in the repository root hides an installed plexhub from the tests"
    assert set(PACKAGES) == set(folders)


def test_plexhub_comes_from_core_or_from_site_packages() -> None:
    here = Path(plexhub.__file__).resolve().parent
    installed = os.environ.get("TEST_WHEEL_SITE_PACKAGES")  # set by scripts/test_wheel.sh
    if installed:
        assert here == Path(installed).resolve() / "plexhub"
    else:
        sites = {Path(p).resolve() for p in [*site.getsitepackages(),
                                             sysconfig.get_paths()["purelib"]]}
        assert here == REPO / "core" or here.parent in sites, here
