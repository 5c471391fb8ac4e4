#!/usr/bin/env bash
# Runs the official Lettermint SDKs (Python and Node.js) against a fresh api-server.
#
#   tests/interop/run.sh            # both SDKs
#   tests/interop/run.sh python     # only the Python SDK
#   tests/interop/run.sh node       # only the Node.js SDK
#
# Environment:
#   API_SERVER_BIN      use this server binary instead of building it with cargo
#   INTEROP_KEEP_TMP=1  keep the temporary directory (database, logs, venv) for inspection
#   INTEROP_START_TIMEOUT  seconds to wait for the server's startup lines (default 60)
#
# The server starts on an empty SQLite database in a temporary directory, listens on a
# free port and prints its address and the first project and team tokens, which become
# LETTERMINT_BASE_URL (the origin, without /v1), LETTERMINT_PROJECT_TOKEN and
# LETTERMINT_TEAM_TOKEN for the tests. Everything is removed and the server stopped on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

suites=("$@")
if [ "${#suites[@]}" -eq 0 ]; then
  suites=(python node)
fi
for suite in "${suites[@]}"; do
  case "$suite" in
    python | node) ;;
    *)
      echo "unknown suite: $suite (expected python or node)" >&2
      exit 2
      ;;
  esac
done
wants() {
  local s
  for s in "${suites[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

log() { printf '==> %s\n' "$*" >&2; }

# --- Tool checks, before anything is built or started ----------------------------------------
python_bin="${PYTHON:-python3}"
if wants python; then
  if ! "$python_bin" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    echo "the Python SDK needs Python 3.10 or newer ($python_bin)" >&2
    exit 2
  fi
fi
if wants node; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node and npm are required for the Node.js SDK tests" >&2
    exit 2
  fi
  if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
    echo "the Node.js SDK tests need Node.js 18 or newer" >&2
    exit 2
  fi
fi

# --- The server binary -----------------------------------------------------------------------
if [ -n "${API_SERVER_BIN:-}" ]; then
  server_bin="$API_SERVER_BIN"
else
  log "building api-server (release)"
  (cd "$root" && cargo build --release --locked -p api-server)
  server_bin="${CARGO_TARGET_DIR:-$root/target}/release/api-server"
fi
if [ ! -x "$server_bin" ]; then
  echo "api-server binary not found or not executable: $server_bin" >&2
  exit 2
fi

# --- Temporary directory and cleanup ---------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/lettermint-interop.XXXXXX")"
server_pid=""

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

cleanup() {
  local status=$?
  stop_server
  if [ "${INTEROP_KEEP_TMP:-}" = 1 ]; then
    log "kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_server_log() {
  echo "----- api-server stdout -----" >&2
  cat "$tmp/server.out" >&2 || true
  echo "----- api-server stderr -----" >&2
  cat "$tmp/server.err" >&2 || true
  echo "-----------------------------" >&2
}

# --- Start the server and read its address and tokens ----------------------------------------
log "starting $server_bin"
NO_COLOR=1 "$server_bin" \
  --database-url "sqlite://$tmp/db.sqlite" \
  --listen 127.0.0.1:0 \
  >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
server_pid=$!

# Startup lines, possibly indented, possibly behind a log prefix; colour codes are removed.
#   listening on http://127.0.0.1:41234
#   project token: lm_...
#   team token: lm_team_...
startup_text() {
  cat "$tmp/server.out" "$tmp/server.err" 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' || true
}
addr=""
project_token=""
team_token=""
deadline=$((SECONDS + ${INTEROP_START_TIMEOUT:-60}))
while :; do
  text="$(startup_text)"
  addr="$(grep -oE 'listening on http://[^[:space:]/]+' <<<"$text" | head -n1 | sed 's#^listening on http://##' || true)"
  project_token="$(grep -oE '(^|[^[:alnum:]_])project token: *lm_[A-Za-z0-9]+' <<<"$text" | head -n1 | sed -E 's/.*project token: *//' || true)"
  team_token="$(grep -oE 'team token: *lm_team_[A-Za-z0-9]+' <<<"$text" | head -n1 | sed -E 's/.*team token: *//' || true)"
  if [ -n "$addr" ] && [ -n "$project_token" ] && [ -n "$team_token" ]; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid" 2>/dev/null && code=0 || code=$?
    server_pid=""
    echo "api-server exited (status $code) before printing its address and tokens" >&2
    show_server_log
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    found() { if [ -n "$1" ]; then echo found; else echo missing; fi; }
    echo "api-server did not print its address and both tokens within ${INTEROP_START_TIMEOUT:-60}s" \
      "(address: ${addr:-missing}, project token: $(found "$project_token")," \
      "team token: $(found "$team_token"))" >&2
    show_server_log
    exit 1
  fi
  sleep 0.2
done

# An unspecified listen address is reachable on loopback.
case "$addr" in
  0.0.0.0:*) addr="127.0.0.1:${addr#0.0.0.0:}" ;;
  "[::]:"*) addr="[::1]:${addr#\[::\]:}" ;;
esac

export LETTERMINT_BASE_URL="http://$addr"
export LETTERMINT_PROJECT_TOKEN="$project_token"
export LETTERMINT_TEAM_TOKEN="$team_token"
log "api-server is listening on $LETTERMINT_BASE_URL"

# Wait until the port answers (the line may be printed just before the accept loop runs).
host="${addr%:*}"
host="${host#[}"
host="${host%]}"
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/$host/${addr##*:}") 2>/dev/null; then
    break
  fi
  sleep 0.1
done

# --- The suites ------------------------------------------------------------------------------
failed=()

if wants python; then
  log "Python SDK: installing into a virtual environment"
  if "$python_bin" -m venv "$tmp/venv" &&
    "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$here/python/requirements.txt"; then
    log "Python SDK: running pytest"
    mkdir -p "$tmp/python"
    cp "$here/python/test_sdk.py" "$tmp/python/"
    if (cd "$tmp/python" && PYTHONDONTWRITEBYTECODE=1 "$tmp/venv/bin/python" -m pytest -q \
      -p no:cacheprovider test_sdk.py); then
      log "Python SDK: passed"
    else
      failed+=(python)
    fi
  else
    echo "could not install the Python SDK" >&2
    failed+=(python-install)
  fi
fi

if wants node; then
  log "Node.js SDK: installing with npm ci"
  mkdir -p "$tmp/node"
  cp "$here/node/package.json" "$here/node/package-lock.json" "$here/node/test_sdk.mjs" "$tmp/node/"
  if (cd "$tmp/node" && npm ci --no-audit --no-fund --loglevel=error); then
    log "Node.js SDK: running node --test"
    if (cd "$tmp/node" && node --test test_sdk.mjs); then
      log "Node.js SDK: passed"
    else
      failed+=(node)
    fi
  else
    echo "could not install the Node.js SDK" >&2
    failed+=(node-install)
  fi
fi

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "api-server is no longer running" >&2
  failed+=(server-exited)
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "interop tests failed: ${failed[*]}" >&2
  show_server_log
  exit 1
fi
log "interop tests passed: ${suites[*]}"
