#!/usr/bin/env bash
# The wheel, installed for real: build it from the checkout's files, check what it holds,
# install it NOT editable into a fresh venv and run a subset of the tests against that copy,
# from the repository root (where pytest puts the checkout first on sys.path: no folder there
# may shadow the installed `plexhub`).
#
# Offline and fast: the fresh venv borrows the dev venv's dependencies (a symlink per entry of
# its site-packages, minus plexhub's own editable install) and installs only the wheel with
# --no-deps --no-index. PYTHON is the dev venv's interpreter; extra arguments go to pytest
# (instead of the default subset below).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
work=$REPO/build/test-wheel
T0=$SECONDS
step() { echo "== [test-wheel $((SECONDS - T0))s] $*"; }

rm -rf "$work" && mkdir -p "$work/src" "$work/dist"
step "copying the checkout's files (tracked and not ignored) to build from a clean tree"
# a stale build/lib in the checkout would leak removed modules into the wheel
git ls-files -z --cached --others --exclude-standard \
  | "$PYTHON" -c 'import os, sys; sys.stdout.write("".join(
        f + "\0" for f in sys.stdin.read().split("\0") if f and os.path.lexists(f)))' \
  | tar -c --null -T - | tar -x -C "$work/src"

step "building the wheel (pip wheel --no-deps --no-build-isolation; compiles the C kernels)"
# setuptools' long notes (data folders that look like packages) go to the log, shown on failure
"$PYTHON" -m pip wheel --no-deps --no-build-isolation -q -w "$work/dist" "$work/src" \
  >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/plexhub-*.whl)
echo "$(basename "$wheel") $(du -h "$wheel" | cut -f1)"

step "checking what the wheel holds"
"$PYTHON" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split("/")[0] for n in names}
bad = sorted(t for t in tops if t != "plexhub" and not t.endswith((".dist-info", ".data")))
assert not bad, f"top-level names besides plexhub in the wheel: {bad}"
# data files: only the lab extension, the server extension's switch and the first login's
# notebooks (share/plexhub/notebooks)
allowed = ("data/share/jupyter/labextensions/plexhub/", "data/etc/jupyter/",
           "data/share/plexhub/notebooks/")
extra = [n for n in names if n.split("/")[0].endswith(".data")
         and not n.split("/", 1)[1].startswith(allowed)]
assert not extra, f"unexpected data files in the wheel: {extra[:5]}"
names = [n for n in names if not n.split("/")[0].endswith(".data")]
parts = {p for n in names for p in n.split("/")[1:-1]}
for folder in ("tests", "bench", "notebooks", "shared", "scripts", "core", "node_modules"):
    assert folder not in parts, f"the wheel holds a {folder}/ folder"
data = (".czi", ".svs", ".qptiff", ".mcd", ".tif", ".tiff", ".ome.zarr", ".zarr", ".npz", ".ipynb")
found = [n for n in names if n.lower().endswith(data)]
assert not found, f"sample data in the wheel: {found[:5]}"
for need in ("plexhub/__init__.py", "plexhub/py.typed", "plexhub/cli.py",
             "plexhub/api/migrations/script.py.mako", "plexhub/widgets/napari_plugin/napari.yaml",
             "plexhub/api/portal/templates/image.html", "plexhub/widgets/static/viewer.js"):
    assert need in names, f"{need} missing from the wheel"
assert any(n.startswith("plexhub/ome_pipeline/_kernels.") and n.endswith(".so") for n in names), \
    "the C kernels were not built into the wheel (a compiler and Python.h are needed)"
print(f"{len(names)} files, top level: {sorted(tops)}")
EOF

step "a fresh venv with the dev venv's dependencies, the wheel installed into it (not editable)"
base=$("$PYTHON" -c 'import sys; print(sys._base_executable)')
"$base" -m venv --without-pip "$work/venv"
py=$work/venv/bin/python
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
dev_site=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for entry in "$dev_site"/* "$dev_site"/.[!.]*; do
  [ -e "$entry" ] || continue
  case "$(basename "$entry")" in
    plexhub|plexhub-*.dist-info|__editable__*plexhub*|__pycache__) continue ;;
  esac
  ln -s "$entry" "$site/"
done
# and the data files beside site-packages: nbconvert's templates and the kernel specs
# (share/jupyter), the Jupyter server config (etc/jupyter)
dev_prefix=$("$PYTHON" -c 'import sys; print(sys.prefix)')
for data in share etc; do
  if [ -e "$dev_prefix/$data" ]; then ln -s "$dev_prefix/$data" "$work/venv/$data"; fi
done
"$py" -m pip install -q --no-deps --no-index --no-compile "$wheel"

step "the installed copy is the one imported, also from the repository root"
TEST_WHEEL_SITE_PACKAGES=$site "$py" -c '
import os, sys, plexhub, plexhub.api, plexhub.ome_pipeline._kernels as k, importlib.metadata as md
site = os.environ["TEST_WHEEL_SITE_PACKAGES"]
for m in (plexhub, plexhub.api, k):
    assert m.__file__.startswith(site + "/plexhub/"), f"{m.__name__} from {m.__file__}, not {site}"
assert "editable" not in (md.distribution("plexhub").read_text("direct_url.json") or "")
print("plexhub from", plexhub.__file__)'

# The subset (about 3 minutes on a quiet 2-core machine; the whole suite takes 30+): what an
# installed copy can break and the editable install hides. Package data found beside the modules
# (the migrations, run by every API fixture; the portal's templates and vendored viewer; the
# notebook viewer's JavaScript; nbconvert's templates for published notebooks), the entry points
# (the `plexhub` subcommands, third-party readers) and `python -m plexhub` child processes
# (test_cli_and_plugins), the compiled kernels the wheel built (test_kernels), the layout and
# layer checks (test_layers asserts plexhub comes from this venv) and every pure unit test. Left out: the
# hub, browser and napari tests (they need the dev venv's console scripts, Chromium and Xvfb, and
# take most of the suite's time), and test_migrate (4 minutes of concurrent start-ups; the
# migrations themselves run in every API fixture here). `make test` runs them all, editable.
subset=(
  tests/unit
  tests/integration/test_cli_and_plugins.py
  tests/integration/api/test_portal.py
  tests/integration/widgets/test_viewer.py
)
[ $# -gt 0 ] || set -- "${subset[@]}"
step "pytest against the installed copy: $*"
TEST_WHEEL_SITE_PACKAGES=$site "$py" -m pytest -q -p no:cacheprovider "$@"
step "done"
