#!/usr/bin/env bash
# Fresh machine -> installed s1tiling + the demo request processed (S2 tile 32UNB from two merged S1 slices).
# Usage: bash scripts/demo.sh [DEMO_FOLDER] [RESOLUTION_M]   (defaults: ./demo and 20 m)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-demo}
resolution=${2:-20}
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q .
.venv/bin/python -m s1tiling.demo "$folder" --resolution "$resolution"
.venv/bin/s1tiling "$folder/S1Processor.cfg"
echo "Products:"; find "$folder/output" -type f -not -name '*.aux.xml' | sort
