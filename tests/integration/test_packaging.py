"""The wheel installs only the `plexhub` namespace, and works in a fresh virtualenv."""

from __future__ import annotations

import os
import re
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
    assert tops == {"plexhub", next(t for t in tops if t.endswith(".dist-info")),
                    next(t for t in tops if t.endswith(".data"))}
    # data files: only the prebuilt JupyterLab extension, the server extension's switch and
    # the notebooks copied into scientists' homes
    data = sorted(n.split("/", 2)[2] for n in names if n.split("/")[0].endswith(".data"))
    assert {d.split("/")[0] for d in data} == {"share", "etc"}
    assert all(d.startswith(("share/jupyter/labextensions/plexhub/", "share/plexhub/notebooks/",
                             "etc/jupyter/jupyter_server_config.d/plexhub.json")) for d in data)
    assert "share/jupyter/labextensions/plexhub/package.json" in data
    assert "share/jupyter/labextensions/plexhub/static/style.js" in data
    assert any(d.startswith("share/jupyter/labextensions/plexhub/static/remoteEntry.")
               for d in data)
    assert "share/plexhub/notebooks/viewer-quickstart.ipynb" in data
    assert "plexhub/hub/templates/home.html" in names
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
    # the PDF report's font and its license
    assert "plexhub/api/fonts/DejaVuSans-subset.ttf" in names
    assert "plexhub/api/fonts/LICENSE.txt" in names
    for profile in ("glp", "non-glp"):  # compliance profiles are package data
        assert f"plexhub/policies/profiles/{profile}.yaml" in names
    assert not any(n.endswith((".czi", ".svs", ".qptiff", ".mcd", ".tiff")) for n in names)
    # neither the tests, the benchmarks, the notebooks nor the core's folder name (core/ is
    # plexhub/ itself) travel
    # (data files under plexhub-*.data/ are checked below: the notebooks travel there on
    # purpose, for the first login's copy)
    folders = {part for n in names if not n.split("/")[0].endswith(".data")
               for part in n.split("/")[1:-1]}
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
    # JupyterLab (from the test's environment, through a .pth: the fresh venv's own plexhub
    # comes first) lists both extensions as enabled from the wheel's install
    site = next((env / "lib").glob("python3*/site-packages"))
    (site / "zz-test-deps.pth").write_text(
        "\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    jenv = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
            "JUPYTER_DATA_DIR": str(tmp_path / "jdata"), "JUPYTER_PLATFORM_DIRS": "0"}
    labs = subprocess.run([str(py), "-m", "jupyterlab.labextensions", "list"], env=jenv,
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    listed = re.sub(r"\x1b\[[0-9;]*m", "", labs.stdout + labs.stderr)
    assert f"{env}/share/jupyter/labextensions" in listed, listed
    assert re.search(r"plexhub v0\.1\.0 enabled\s+OK \(python, plexhub\)", listed), listed
    servers = subprocess.run(
        [str(py), "-c", "from jupyter_server.extension.serverextension import main; main()",
         "list"], env=jenv, capture_output=True, text=True, check=True, cwd=tmp_path)
    listed = re.sub(r"\x1b\[[0-9;]*m", "", servers.stdout + servers.stderr)
    assert "plexhub.extensions enabled" in listed, listed
    assert "plexhub.extensions  OK" in listed, listed
