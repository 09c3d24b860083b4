#!/usr/bin/env bash
# mypy does not follow setuptools' package-dir mapping, so build a link tree that looks like
# the installed `plexhub` namespace (core/ as plexhub/, the other folders beside it) and
# type-check that (strict, see pyproject.toml), with the bench scripts (strict; each a top-level
# module, as they import one another) and the tests (checked, not strict: pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/plexhub"
for f in core/*.py core/py.typed; do ln -s "$PWD/$f" "$tree/plexhub/$(basename "$f")"; done
for pkg in ome_pipeline api widgets hub policies extensions; do
  ln -s "$PWD/$pkg" "$tree/plexhub/$pkg"
done
export MYPYPATH="$tree"
"${PYTHON:-python}" -m mypy --config-file pyproject.toml -p plexhub -p tests "$@"
# mypy takes packages or files, not both; the second run reuses the first one's cache
exec "${PYTHON:-python}" -m mypy --config-file pyproject.toml bench/*.py "$@"
