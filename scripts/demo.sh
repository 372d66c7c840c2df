#!/usr/bin/env bash
# Fresh machine -> s1tiling installed in .venv, then the demo request built and run: two consecutive
# Sentinel-1 slices of one pass merged onto one Sentinel-2 tile, VV and VH, with border masks and
# quicklooks. Without the project's reference data (a clone on its own) the slices are synthetic, over
# S2 tile 31TEL; with it (S1TILING_TEST_DATA, or ../shared/data) they carry real ESA metadata, over 32UNB.
#
# Usage: bash scripts/demo.sh [DEMO_FOLDER] [RESOLUTION_M]   (defaults: ./demo and 20 m)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-demo}
resolution=${2:-20}
# .venv with s1tiling (editable; skipped when already installed; shared with scripts/test.sh, in either order)
bash scripts/install.sh
config=$(.venv/bin/python -m s1tiling.demo "$folder" --resolution "$resolution")
output=$(dirname "$config")/output

# Only what this run writes is listed: files newer than this marker.
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
status=0
.venv/bin/s1tiling "$config" || status=$?
echo
made=$(find "$output" -type f -newer "$marker" -not -name '*.aux.xml' -not -name '*.json' \
       -not -path '*/_WORKER_LOGS/*' | sort)  # images, masks, quicklooks (not the STAC catalog's files)
if [ -n "$made" ]; then
    echo "This run made $(echo "$made" | wc -l) file(s):"
    echo "$made" | sed 's/^/  /'
else
    echo "This run made nothing new: the products of an earlier run are there already."
fi
[ "$status" = 0 ] || { echo "s1tiling exited with status $status" >&2; exit "$status"; }
quicklook=$(find "$output/_QL" -name '*_vv_*.jpg' 2>/dev/null | sort | tail -1)
echo
echo "Products: $output/<tile>/ (GeoTIFF images and border masks), quicklooks in $output/_QL/,"
echo "STAC catalog $output/catalog.json. To look at one:"
if [ -n "$quicklook" ]; then
    echo "  xdg-open $quicklook     (or open the GeoTIFFs in QGIS)"
fi
