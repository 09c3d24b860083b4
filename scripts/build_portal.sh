#!/usr/bin/env bash
# Vendor the portal's browser code: OpenSeadragon, pinned in api/portal/package.json (and
# package-lock.json), is installed from npm and its minified build, button images and
# licence are copied into api/portal/static/vendor/. The copies are committed, so a wheel
# or an install without npm has them; nothing is ever loaded from a CDN.
#   scripts/build_portal.sh          install and copy
#   scripts/build_portal.sh --check  install and fail when the committed copy differs
set -euo pipefail
cd "$(dirname "$0")/../api/portal"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi
src=node_modules/openseadragon
out=static/vendor
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/images"
cp "$src/build/openseadragon/openseadragon.min.js" "$out/"
cp "$src"/build/openseadragon/images/*.png "$out/images/"
cp "$src/LICENSE.txt" "$out/LICENSE-openseadragon.txt"
if [ "${1:-}" = "--check" ]; then
  if ! diff -r "$out" static/vendor >/dev/null; then
    echo "api/portal/static/vendor differs from the pinned npm package:" \
         "run scripts/build_portal.sh and commit the result" >&2
    exit 1
  fi
  echo "portal vendor files match openseadragon $(node -p "require('./$src/package.json').version")"
fi
