"""The wheel installs only the `plexhub` namespace, and works in a fresh virtualenv."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_has_only_the_plexhub_namespace_and_imports_in_a_fresh_venv(
        tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, cwd=tmp_path)
    (wheel,) = out.glob("plexhub-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"plexhub", next(t for t in tops if t.endswith(".dist-info"))}
    for sub in ("ome_pipeline", "api", "widgets", "hub", "policies", "extensions"):
        assert f"plexhub/{sub}/__init__.py" in names
    assert "plexhub/ome_pipeline/readers/tiff.py" in names
    assert "plexhub/ome_pipeline/analysis/segmentation.py" in names
    assert "plexhub/py.typed" in names
    # the portal works from a wheel, without npm: templates, static files, vendored viewer
    for asset in ("templates/image.html", "static/viewer.js", "static/notebook.css",
                  "static/vendor/openseadragon.min.js", "static/vendor/LICENSE-openseadragon.txt",
                  "static/vendor/images/zoomin_rest.png"):
        assert f"plexhub/api/portal/{asset}" in names, asset
    assert "plexhub/api/migrations/versions/0002_notebooks_internal_fields.py" in names
    for profile in ("glp", "non-glp"):  # compliance profiles are package data
        assert f"plexhub/policies/profiles/{profile}.yaml" in names
    assert not any(n.endswith((".czi", ".svs", ".qptiff", ".mcd", ".tiff")) for n in names)
    # neither the tests, the benchmarks, the notebooks nor the core's folder name (core/ is
    # plexhub/ itself) travel
    folders = {part for n in names for part in n.split("/")[1:-1]}
    assert not folders & {"tests", "bench", "notebooks", "scripts", "core"}
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    py = env / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True)
    code = ("import plexhub.ome_pipeline, plexhub.api, plexhub.widgets, plexhub.hub, "
            "plexhub.policies, plexhub.extensions, importlib.util as u; "
            "print(plexhub.ome_pipeline.__file__); "
            "print(all(u.find_spec(n) is None for n in ('api', 'widgets', 'hub', 'policies', "
            "'extensions', 'ome_pipeline')))")
    res = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path)
    path, isolated = res.stdout.split()
    assert str(env) in path
    assert isolated == "True"
