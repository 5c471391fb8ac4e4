#!/usr/bin/env bash
# The dashboard in a real browser: Playwright for Python driving Debian's Chromium
# (/usr/bin/chromium, headless) against a fresh api-server, with pytest.
#
#   tests/browser/run.sh                  # builds api-server and token-admin, runs every test
#   tests/browser/run.sh -k throttl -x    # extra arguments go to pytest
#
# Environment:
#   CI=true                 install what is missing: Debian's chromium (apt-get) first
#   BIN_DIR                 use api-server and token-admin from this directory instead of
#                           building them with cargo (debug)
#   BROWSER_VENV            the Python virtual environment (default target/browser-venv)
#   CHROMIUM                the browser (default /usr/bin/chromium)
#   BROWSER_SCREENSHOT_DIR  where dashboard-<name>.png screenshots go (default docs/img)
#   BROWSER_KEEP_TMP=1      keep the server's temporary directory (database, output)
#
# The Python packages (requirements.txt) go into the virtual environment, created or updated
# when requirements.txt changed. Playwright's own browser download is never used.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${BROWSER_VENV:-$target/browser-venv}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
python_bin="${PYTHON:-python3}"

log() { printf '==> %s\n' "$*" >&2; }

# --- Tools ----------------------------------------------------------------------------------------
need_apt=()
[ -x "$chromium" ] || need_apt+=(chromium)
"$python_bin" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    log "installing: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing: ${need_apt[*]}" >&2
    echo "install with: apt-get update && apt-get install -y ${need_apt[*]}" >&2
    echo "(or run with CI=true to install them)" >&2
    exit 2
  fi
fi
[ -x "$chromium" ] || { echo "$chromium is still missing after installing chromium" >&2; exit 2; }
if ! "$python_bin" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
  echo "the browser tests need Python 3.9 or newer ($python_bin)" >&2
  exit 2
fi
log "$("$chromium" --version 2>/dev/null | head -n1)"

# --- Python packages, in a virtual environment kept between runs ---------------------------------
stamp="$venv/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  log "installing Playwright and pytest into $venv"
  rm -rf "$venv"
  "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

# --- The binaries --------------------------------------------------------------------------------
if [ -n "${BIN_DIR:-}" ]; then
  bin="$BIN_DIR"
else
  log "building api-server and token-admin (debug)"
  (cd "$root" && cargo build --locked -p api-server -p token-admin)
  bin="$target/debug"
fi
for exe in api-server token-admin; do
  [ -x "$bin/$exe" ] || { echo "$bin/$exe is missing: cargo build -p api-server -p token-admin" >&2; exit 2; }
done

# --- The tests -----------------------------------------------------------------------------------
log "running the browser tests"
cd "$here"
status=0
BIN_DIR="$bin" CHROMIUM="$chromium" PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/python" -m pytest "$here" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "browser tests failed (pytest exit status $status)" >&2
  exit "$status"
fi
log "browser tests passed"
