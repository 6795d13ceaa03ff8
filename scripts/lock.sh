#!/usr/bin/env bash
# Refresh requirements/lock.txt: every dependency of `.[all]` pinned, with hashes, at the versions
# installed in ./.venv (or $RMNET_VENV), the environment the tests passed in.
#   bash scripts/install.sh && <upgrade what you mean to> && bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${RMNET_VENV:-.venv}"
tested=$(mktemp)
trap 'rm -f "$tested"' EXIT
"$venv/bin/python" -m pip freeze --exclude-editable > "$tested"
# pip's own index settings (this machine's local wheel directories included) apply to uv as well.
indexes=()
for url in $("$venv/bin/python" -m pip config get global.extra-index-url 2>/dev/null || true); do
  indexes+=(--extra-index-url "$url")
done
links=${PIP_FIND_LINKS:-$("$venv/bin/python" -m pip config get global.find-links 2>/dev/null || true)}
[ -n "$links" ] && indexes+=(--find-links "$links")
"$venv/bin/uv" pip compile pyproject.toml --extra all --generate-hashes --no-annotate --quiet \
  --python-version 3.11 --index-strategy unsafe-best-match \
  --custom-compile-command "bash scripts/lock.sh" -c "$tested" "${indexes[@]}" -o requirements/lock.txt
echo "wrote requirements/lock.txt ($(grep -c '==' requirements/lock.txt) packages)"
