#!/usr/bin/env bash
# Copy the dashboard's charting library (uPlot, pinned in scripts/dashboard-vendor/package.json
# and its lock) into app/dashboard/static/vendor/. Run by hand when the pin changes; the copied
# files are committed, so `make run` needs neither node nor the network.
set -euo pipefail
cd "$(dirname "$0")/.."
src=scripts/dashboard-vendor
dest=app/dashboard/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src/package.json" "$src/package-lock.json" "$work/"
(cd "$work" && npm ci --no-audit --no-fund --ignore-scripts --silent)
pkg="$work/node_modules/uplot"
version=$(node -p "require('$pkg/package.json').version")
mkdir -p "$dest"
cp "$pkg/dist/uPlot.esm.js" "$dest/uPlot.esm.js"
cp "$pkg/dist/uPlot.min.css" "$dest/uPlot.min.css"
cp "$pkg/LICENSE" "$dest/uPlot.LICENSE"
printf 'uPlot %s (MIT, https://github.com/leeoniya/uPlot), from npm by scripts/vendor_dashboard.sh\n' \
  "$version" > "$dest/VERSION"
echo "vendored uPlot $version into $dest"
