#!/usr/bin/env bash
# Runs hamdb's test suite. PostgreSQL tests use $HAMDB_TEST_POSTGRES_URL (default: the local
# server on 127.0.0.1:5432, database test, user postgres); with CI=true they must run, not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export HAMDB_TEST_POSTGRES_URL=${HAMDB_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "test: starting the local PostgreSQL server"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 1; done
fi

"$PY" -m ruff check --quiet .
set +e
"$PY" -m pytest -q "$@"
status=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
if [ "$status" -eq 5 ]; then echo "test: no tests were collected" >&2; exit 1; fi
exit "$status"
