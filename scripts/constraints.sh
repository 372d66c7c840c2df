#!/usr/bin/env bash
# Print the pinned versions of s1tiling's runtime dependencies (and of theirs, recursively, extras
# left out) as installed in .venv: the constraints file of the Docker image.
#
#   bash scripts/constraints.sh > docker/constraints.txt
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python - <<'PY'
import importlib.metadata as md
import re

from packaging.requirements import Requirement

seen, todo = {}, ["s1tiling"]
while todo:
    name = todo.pop()
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:  # an optional dependency not installed
        continue
    seen[key] = dist.version
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        todo.append(requirement.name)
seen.pop("s1tiling")
print("# Versions of s1tiling's runtime dependencies (and theirs) used by docker/Dockerfile")
print("# (pip install -c docker/constraints.txt): the image is reproducible; tested together with")
print("# Python 3.11 (Debian 12's). Regenerate from a venv where the tests pass:")
print("#   bash scripts/constraints.sh > docker/constraints.txt")
for key in sorted(seen):
    print(f"{key}=={seen[key]}")
PY
