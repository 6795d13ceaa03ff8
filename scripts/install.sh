#!/usr/bin/env bash
# Install the suite into ./.venv (or $RMNET_VENV) with the given pip extras, plus the system data it uses.
#   bash scripts/install.sh            # runtime + tests
#   bash scripts/install.sh all        # every extra (workflow, notebooks, ONNX, analysis)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
venv="${RMNET_VENV:-.venv}"

# Real images for the embedded default: Debian's Fashion-MNIST (files under /usr/share/datasets/fashion-mnist).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo_cmd="sudo"
  { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "warning: could not install dataset-fashion-mnist; pass a Fashion-MNIST path to the data layer instead" >&2
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
# torch and torchvision are pinned to a matching pair (a CUDA build that also runs on the CPU).
"$venv/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
"$venv/bin/python" -m pip install -q -e ".[${extras}]"
echo "installed into $venv with extras [${extras}]"
