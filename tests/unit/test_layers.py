"""The layers kept by a tool, not by hand: pyproject's import-linter contracts cover every core
module, and no package imports another package's ``_private`` names."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

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
