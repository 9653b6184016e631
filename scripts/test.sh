#!/usr/bin/env bash
# Run the test suite against the real services it needs: PostgreSQL on 127.0.0.1:5432 and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export ABLATION_TASKS_DIR="${ABLATION_TASKS_DIR:-$(cd .. && pwd)/shared/data}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$VENV/bin/python" -m pytest "$@"
