#!/usr/bin/env bash
# The project's test command: creates .venv if needed, installs natsd with its
# test extra, then runs ruff, mypy and pytest. With no arguments it runs the
# whole suite (natsd started with 2 workers), then the end-to-end tests again
# with --workers 1 and --workers 4. Extra arguments go to a single pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "== ruff"
.venv/bin/ruff check natsd supervisor tests perf
echo "== mypy"
.venv/bin/mypy
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
echo "== pytest (natsd --workers 2)"
.venv/bin/python -m pytest -q
for w in 1 4; do
    echo "== pytest tests/e2e (natsd --workers $w)"
    NATSD_TEST_WORKERS=$w .venv/bin/python -m pytest -q -m e2e tests/e2e
done
