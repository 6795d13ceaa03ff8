#!/usr/bin/env bash
# Static checks: ruff (lint rules in pyproject.toml [tool.ruff]) and mypy ([tool.mypy]), with the
# project's virtual environment (VENV, default .venv). Exits non-zero if either reports a problem;
# both always run, so one CI log shows every finding.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
status=0
"$venv/bin/ruff" check . || status=1
"$venv/bin/mypy" || status=1
exit "$status"
