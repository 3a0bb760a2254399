#!/usr/bin/env bash
# Run the ultralytics-backed hand-box test (pytest marker `yolo`) in a separate virtual environment.
#
# ultralytics needs torchvision, which does not install beside the CPU torch of the project's .venv, so this
# script builds its own venv (default /tmp/xmic-venv-yolo; override with XMIC_YOLO_VENV) with the CUDA build of
# torch 2.14.1 + torchvision 0.29.1 (~5.5 GB), ultralytics and xmic (editable), then runs
# `pytest tests/test_hands.py -m yolo`. The test builds a random-weight YOLOv8n from its yaml config, so
# nothing is downloaded at test time (the test fails if ultralytics tries to).
#
# Usage: scripts/test_yolo.sh [extra pytest args]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XMIC_YOLO_VENV:-/tmp/xmic-venv-yolo}"
PYTHON="${PYTHON:-python3}"
MIN_FREE_GB="${XMIC_YOLO_MIN_FREE_GB:-20}"

if [ ! -x "$VENV/bin/python" ]; then
    parent="$(dirname "$VENV")"
    free_gb=$(df -Pk "$parent" | awk 'NR==2 {print int($4 / 1048576)}')
    if [ "$free_gb" -lt "$MIN_FREE_GB" ]; then
        echo "test_yolo.sh: only ${free_gb} GB free under $parent; the yolo venv needs ~${MIN_FREE_GB} GB" \
            "(torch CUDA build). Set XMIC_YOLO_VENV to a roomier place or XMIC_YOLO_MIN_FREE_GB." >&2
        exit 2
    fi
    echo "test_yolo.sh: creating $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --upgrade pip
    "$VENV/bin/python" -m pip install "torch==2.14.1" "torchvision==0.29.1"
    "$VENV/bin/python" -m pip install ultralytics
    "$VENV/bin/python" -m pip install -e "$REPO[dev]"
fi

# Keep ultralytics' settings and any font/asset cache out of the user's home, and offline.
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$VENV/ultralytics-config}"
export YOLO_OFFLINE=1
mkdir -p "$YOLO_CONFIG_DIR"

cd "$REPO"
"$VENV/bin/python" -c "import ultralytics, torch, torchvision; print('ultralytics', ultralytics.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
exec "$VENV/bin/python" -m pytest tests/test_hands.py -m yolo -v -p no:cacheprovider "$@"
