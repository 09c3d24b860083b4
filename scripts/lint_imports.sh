#!/usr/bin/env bash
# The import layers of pyproject's [tool.importlinter], checked on a link tree that looks like
# the installed `plexhub` namespace (grimp, like mypy, does not follow setuptools' package-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/importlint
rm -rf "$tree" && mkdir -p "$tree/plexhub"
for f in core/*.py; do ln -s "$PWD/$f" "$tree/plexhub/$(basename "$f")"; done
for pkg in ome_pipeline api widgets hub policies extensions; do
  ln -s "$PWD/$pkg" "$tree/plexhub/$pkg"
done
# run from the tree: import-linter puts the working folder first on sys.path, where the checkout's
# top-level folders (api/, hub/, ...) would be importable under their bare names
config="$PWD/pyproject.toml"
cd "$tree"
exec "${PYTHON:-python}" -P -c "from importlinter.cli import lint_imports_command as c; c()" \
  --no-cache "$config"
