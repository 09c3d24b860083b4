"""Build plexhub's prebuilt JupyterLab extension (extensions/lab, TypeScript) and ship it.

``python scripts/labext.py [--force]`` (``make labext``) installs the node packages with jlpm
(yarn, as ``jupyter_builder`` ships it; packages come from the npm registry, pinned by
``extensions/lab/yarn.lock``), compiles the TypeScript and bundles it with
``jupyter-builder`` into ``extensions/labextension/``. Nothing of it is committed; the output is
rebuilt when a source is newer.

setuptools runs the same build (the ``build_labext`` step of every ``build``: wheel, sdist
install, ``pip install -e .``) and installs the result as data files, the way JupyterLab
finds prebuilt extensions: ``share/jupyter/labextensions/plexhub/`` and the server
extension's switch in ``etc/jupyter/jupyter_server_config.d/plexhub.json``. Nothing is fetched
when JupyterLab runs. ``PLEXHUB_SKIP_LABEXTENSION=1`` installs without it (no Node.js).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from setuptools import Command
from setuptools.command.build import build

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "extensions" / "lab"
OUT = ROOT / "extensions" / "labextension"
CONFIG = ROOT / "extensions" / "jupyter-config"
NAME = "plexhub"  # the npm package's name: share/jupyter/labextensions/<NAME>
SOURCES = ("package.json", "yarn.lock", "tsconfig.json", ".yarnrc.yml", "src", "style")


def _newest(paths: list[Path]) -> float:
    times = [0.0]
    for p in paths:
        if p.is_dir():
            times += [f.stat().st_mtime for f in p.rglob("*") if f.is_file()]
        elif p.exists():
            times.append(p.stat().st_mtime)
    return max(times)


def up_to_date() -> bool:
    built = OUT / "package.json"
    return built.exists() and (OUT / "static" / "style.js").exists() and \
        built.stat().st_mtime >= _newest([LAB / s for s in SOURCES])


def build_labextension(force: bool = False) -> None:
    if not force and up_to_date():
        return
    if shutil.which("node") is None:
        raise RuntimeError("building plexhub's JupyterLab extension needs Node.js (node, npm): "
                           "install it (apt-get install nodejs npm), or set "
                           "PLEXHUB_SKIP_LABEXTENSION=1 to install without the extension")
    py = sys.executable
    env = {**os.environ, "YARN_ENABLE_TELEMETRY": "0", "YARN_ENABLE_PROGRESS_BARS": "0"}
    steps = [
        [py, "-c", "from jupyter_builder.jlpm import main; main()", "install", "--immutable"],
        [str(LAB / "node_modules" / ".bin" / "tsc")],
        [py, "-m", "jupyter_builder.main", "build", "."],
    ]
    shutil.rmtree(OUT, ignore_errors=True)
    for cmd in steps:
        print("plexhub labextension:", " ".join(Path(c).name if i < 1 else c
                                                 for i, c in enumerate(cmd)), flush=True)
        subprocess.run(cmd, cwd=LAB, env=env, check=True)
    (OUT / "package.json").touch()


def data_files() -> list[tuple[str, list[str]]]:
    """The built extension as setuptools data files (paths relative to the project)."""
    def rel(p: Path) -> str:
        return str(p.relative_to(ROOT))

    dest = f"share/jupyter/labextensions/{NAME}"
    files: dict[str, list[str]] = {dest: [rel(OUT / "package.json"), rel(LAB / "install.json")]}
    for f in sorted(OUT.rglob("*")):
        if f.is_file() and f.name != "package.json":
            files.setdefault(f"{dest}/{f.parent.relative_to(OUT)}", []).append(rel(f))
    files["etc/jupyter/jupyter_server_config.d"] = [rel(CONFIG / "plexhub.json")]
    return list(files.items())


class BuildLabextension(Command):
    """setuptools step: build the lab extension (when stale) and add it to the data files."""

    description = "build plexhub's prebuilt JupyterLab extension"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = []
    editable_mode = False  # set by setuptools' editable_wheel

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        if os.environ.get("PLEXHUB_SKIP_LABEXTENSION"):
            print("plexhub labextension: skipped (PLEXHUB_SKIP_LABEXTENSION)", flush=True)
            return
        build_labextension()
        # in place: install_data (made before this step in editable builds) holds the list
        dist = self.distribution
        if dist.data_files is None:
            dist.data_files = []
        ours = data_files()
        dist.data_files[:] = [d for d in dist.data_files if d[0] not in dict(ours)] + ours
        self.distribution.get_command_obj("install_data").data_files = dist.data_files
        if self.editable_mode:  # editable_wheel never runs install_data itself (setuptools 84
            self.run_command("install_data")  # asks the distribution for a has_data())


class Build(build):
    """setuptools' build with the lab extension first."""

    sub_commands: ClassVar[list[tuple[str, object]]] = [("build_labext", None), *build.sub_commands]


if __name__ == "__main__":
    build_labextension(force="--force" in sys.argv[1:])
    print(f"plexhub labextension: {OUT.relative_to(ROOT)} is up to date")
