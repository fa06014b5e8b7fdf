#!/usr/bin/env bash
# The whole test suite, from a fresh clone: setup, lint (ESLint and Prettier's
# check), then unit, integration,
# end-to-end (the built service started with `npm start`), and the training
# pipeline's tests (data, calibration, a tiny train -> export -> parity run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

PY=/usr/bin/python3  # Debian's Python, where python3-torch lives
status=0
run() {
  echo "== $*"
  "$@" || status=1
}
run npm run --silent lint
run node --test dist/test/unit/
run node --test dist/test/integration/
run node --test --test-concurrency=1 dist/test/e2e/
run bash -c "cd training && $PY -m pytest -q -p no:cacheprovider tests"
exit $status
