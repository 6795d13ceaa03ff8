#!/usr/bin/env bash
# timm's own model tests (tests/test_models.py of the installed timm version, from its source release on
# PyPI) over the models `replication` registers, with scripts/timm_conformance/conftest.py.
#   bash scripts/timm-conformance.sh [--all | --slow] [pytest arguments ...]
# Default: one representative model per family. --all / --slow: every registered model (what CI runs).
# RMNET_TIMM_MODELS=a,b overrides the model list. The sdist is cached in $TIMM_CONFORMANCE_CACHE
# (default .cache/timm-conformance). Exits with pytest's status (non-zero on any failure; 5 if nothing ran).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
cache="${TIMM_CONFORMANCE_CACHE:-.cache/timm-conformance}"
representatives="rmnet26x3_32,rmnet26x3_32_cifar,resnet18_cifar,resdistill34,repvgg18,repvgg_a2_cifar"
representatives+=",diracnet34_cifar,mobilenetv1_cifar,mobilenetv2_rm_cifar"
models="$representatives"
if [ "${1:-}" = "--all" ] || [ "${1:-}" = "--slow" ]; then
  models=""
  shift
fi
models="${RMNET_TIMM_MODELS-$models}"

version=$("$python" -c "import timm; print(timm.__version__)")
src="$cache/timm-$version"
if [ ! -f "$src/tests/test_models.py" ]; then
  mkdir -p "$cache"
  "$python" -m pip download "timm==$version" --no-binary :all: --no-deps -d "$cache" -q
  tar -xzf "$cache/timm-$version.tar.gz" -C "$cache" "timm-$version/tests/test_models.py"
fi

run="$cache/run-$version"
rm -rf "$run"
mkdir -p "$run"
cp "$src/tests/test_models.py" "$run/"
cp scripts/timm_conformance/conftest.py "$run/"
# test_models.py's markers; pytest-timeout (its timeout marker) is not needed, so it is only declared
cat > "$run/pytest.ini" <<'INI'
[pytest]
markers =
    base
    cfg
    cfg_nonstd
    forward
    backward
    torchscript
    features
    fxforward
    fxbackward
    timeout
filterwarnings =
    ignore::DeprecationWarning
    ignore::FutureWarning
INI
RMNET_TIMM_MODELS="$models" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
  "$python" -m pytest -c "$run/pytest.ini" --rootdir "$run" -p no:cacheprovider -q "$run/test_models.py" "$@"
