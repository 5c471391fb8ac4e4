#!/usr/bin/env bash
# Schema-driven testing of a fresh api-server with Schemathesis: requests generated from the
# server's own OpenAPI document (/v1/openapi.json), with a project token (x-lettermint-token,
# Sending API) and a team token (Authorization: Bearer, Team API). Checks: no 5xx, every status
# code documented, every response body valid against its documented schema.
#
# Environment:
#   API_SERVER_BIN        use this server binary instead of building it with cargo
#   SCHEMATHESIS_SECONDS  time budget of the run (default 120)
#   SCHEMATHESIS_EXAMPLES test cases per operation and phase (default 10)
#   SCHEMATHESIS_SEED     seed (default 1, so that CI runs are reproducible)
#   INTEROP_KEEP_TMP=1    keep the temporary directory (database, logs, venv, report)
#
# The Team API's rate limits (60 writes per minute per token) answer many generated writes with
# 429, which the document declares; the stateful phase still reaches every operation.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
log() { printf '==> %s\n' "$*" >&2; }

python_bin="${PYTHON:-python3}"
if ! "$python_bin" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "Schemathesis needs Python 3.10 or newer ($python_bin)" >&2
  exit 2
fi

if [ -n "${API_SERVER_BIN:-}" ]; then
  server_bin="$API_SERVER_BIN"
else
  log "building api-server"
  (cd "$root" && cargo build --locked -p api-server)
  server_bin="${CARGO_TARGET_DIR:-$root/target}/debug/api-server"
fi
[ -x "$server_bin" ] || { echo "api-server binary not found: $server_bin" >&2; exit 2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/lettermint-schemathesis.XXXXXX")"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  local status=$?
  stop_server
  if [ "${INTEROP_KEEP_TMP:-}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "installing Schemathesis into a virtual environment"
"$python_bin" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r "$here/schemathesis/requirements.txt"

log "starting $server_bin"
NO_COLOR=1 "$server_bin" --database-url "sqlite://$tmp/db.sqlite" --listen 127.0.0.1:0 \
  >"$tmp/server.out" 2>"$tmp/server.err" </dev/null &
server_pid=$!

# The first start prints the address and the first project and team tokens (see run.sh).
addr="" project_token="" team_token=""
deadline=$((SECONDS + ${INTEROP_START_TIMEOUT:-60}))
while :; do
  text="$(cat "$tmp/server.out" "$tmp/server.err" 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' || true)"
  addr="$(grep -oE 'listening on http://[^[:space:]/]+' <<<"$text" | head -n1 | sed 's#^listening on http://##' || true)"
  project_token="$(grep -oE '(^|[^[:alnum:]_])project token: *lm_[A-Za-z0-9]+' <<<"$text" | head -n1 | sed -E 's/.*project token: *//' || true)"
  team_token="$(grep -oE 'team token: *lm_team_[A-Za-z0-9]+' <<<"$text" | head -n1 | sed -E 's/.*team token: *//' || true)"
  [ -n "$addr" ] && [ -n "$project_token" ] && [ -n "$team_token" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "api-server did not print its address and tokens" >&2
    cat "$tmp/server.out" "$tmp/server.err" >&2 || true
    exit 1
  fi
  sleep 0.2
done
base="http://$addr"
for _ in $(seq 1 50); do
  curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
  sleep 0.1
done
log "api-server is listening on $base"

# One worker: the generator's own code is not thread-safe on every Python version. Run from the
# temporary directory, where Schemathesis keeps its cache.
status=0
cd "$tmp"
"$tmp/venv/bin/schemathesis" run "$base/v1/openapi.json" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance \
  -H "x-lettermint-token: $project_token" \
  -H "Authorization: Bearer $team_token" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-10}" \
  --max-time "${SCHEMATHESIS_SECONDS:-120}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir "$tmp/report" || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "api-server is no longer running" >&2
  status=1
fi
# The server must still answer: a hang is a failure even if every check passed.
if ! curl -fsS -m 5 -o /dev/null "$base/healthz"; then
  echo "api-server no longer answers /healthz" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "----- api-server stderr (last 50 lines) -----" >&2
  tail -n 50 "$tmp/server.err" >&2 || true
  exit "$status"
fi
log "schemathesis passed"
