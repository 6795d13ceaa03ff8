#!/usr/bin/env bash
# Install the suite into ./.venv (or $RMNET_VENV) from the lock file, plus the system data it uses.
#   bash scripts/install.sh            # the locked environment (requirements/lock.txt, hashes checked)
#   bash scripts/install.sh all        # the same; the argument names extras for the editable install
# The lock holds every extra at the versions the tests passed with; refresh it with scripts/lock.sh.
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
# Every dependency at its tested version, hash-checked (torch and torchvision as a matching pair: a CUDA
# build that also runs on the CPU); then the suite itself, whose dependencies the lock already holds.
"$venv/bin/python" -m pip install -q --require-hashes -r requirements/lock.txt
"$venv/bin/python" -m pip install -q --no-deps -e ".[${extras}]"
echo "installed into $venv from requirements/lock.txt"
