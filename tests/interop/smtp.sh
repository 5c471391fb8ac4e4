#!/usr/bin/env bash
# Real SMTP clients against smtp-relay: swaks, Python's smtplib and curl, each with STARTTLS and
# implicit TLS, each also with a bad password (535). Every accepted message must then be in the
# store: the token's log (read with token-admin) lists one accepted smtp_message per delivery.
#
#   tests/interop/smtp.sh                  # uses target/debug/{smtp-relay,token-admin}
#   BIN_DIR=target/release tests/interop/smtp.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${BIN_DIR:-$root/target/debug}"
for tool in swaks curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required (Debian: apt-get install $tool)" >&2; exit 1; }
done
for exe in smtp-relay token-admin; do
  [ -x "$bin/$exe" ] || { echo "$bin/$exe is missing: cargo build -p smtp-relay -p token-admin" >&2; exit 1; }
done

tmp="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

db="sqlite://$tmp/lettermint.sqlite"
admin() { "$bin/token-admin" --database-url "$db" "$@"; }
admin team create Interop >/dev/null 2>&1
admin project create Mail --team Interop --smtp >/dev/null 2>&1
token="$(admin token create --project Mail --name smtp 2>/dev/null)"

"$bin/smtp-relay" --database-url "$db" --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 300); do
  grep -q '^listening on smtps://' "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "smtp-relay exited:"; cat "$tmp/err"; exit 1; }
  sleep 0.1
done
starttls="$(sed -n 's|^listening on smtp://\([^ ]*\).*|\1|p' "$tmp/out")"
implicit="$(sed -n 's|^listening on smtps://\([^ ]*\).*|\1|p' "$tmp/out")"
[ -n "$starttls" ] && [ -n "$implicit" ] || { echo "no listening addresses:"; cat "$tmp/out" "$tmp/err"; exit 1; }
echo "smtp-relay: STARTTLS on $starttls, implicit TLS on $implicit"

passed=0
failed=0
expect() { # expect <name> <0|nonzero> <command...>
  local name="$1" want="$2"; shift 2
  local got=0
  "$@" >"$tmp/client.log" 2>&1 || got=$?
  if { [ "$want" = 0 ] && [ "$got" = 0 ]; } || { [ "$want" != 0 ] && [ "$got" != 0 ] && grep -q '535' "$tmp/client.log"; }; then
    echo "ok - $name"; passed=$((passed + 1))
  else
    echo "not ok - $name (exit $got)"; sed 's/^/    /' "$tmp/client.log" | tail -20; failed=$((failed + 1))
  fi
}

host() { echo "${1%:*}"; }
port() { echo "${1##*:}"; }

swaks_send() { # swaks_send <mode: starttls|implicit> <password> <subject>
  local mode="$1" flags=(--tls) addr="$starttls"
  [ "$mode" = implicit ] && { flags=(--tls-on-connect); addr="$implicit"; }
  swaks --server "$(host "$addr")" --port "$(port "$addr")" "${flags[@]}" \
    --auth PLAIN --auth-user lettermint --auth-password "$2" \
    --from sender@example.com --to rcpt@example.com \
    --header "Subject: $3" --header "X-LM-Tag: interop" --body "sent by swaks"
}

python_send() { # python_send <mode> <password> <subject>
  python3 - "$1" "$2" "$3" "$starttls" "$implicit" <<'PY'
import smtplib, ssl, sys
from email.message import EmailMessage
mode, password, subject, starttls, implicit = sys.argv[1:]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the relay's certificate is self-signed here
msg = EmailMessage()
msg["From"], msg["To"], msg["Subject"] = "sender@example.com", "rcpt@example.com", subject
msg["X-LM-Metadata-order"] = "42"
msg.set_content("sent by smtplib")
if mode == "starttls":
    host, port = starttls.rsplit(":", 1)
    client = smtplib.SMTP(host, int(port), timeout=30)
    client.starttls(context=context)
else:
    host, port = implicit.rsplit(":", 1)
    client = smtplib.SMTP_SSL(host, int(port), context=context, timeout=30)
try:
    client.login("lettermint", password)
    client.send_message(msg)
except smtplib.SMTPAuthenticationError as e:
    print(e.smtp_code, e.smtp_error.decode())
    sys.exit(1)
finally:
    try:
        client.quit()
    except smtplib.SMTPServerDisconnected:
        pass
PY
}

curl_send() { # curl_send <mode> <password> <subject>
  local url="smtp://$starttls"
  [ "$1" = implicit ] && url="smtps://$implicit"
  printf 'From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: %s\r\n\r\nsent by curl\r\n' "$3" >"$tmp/mail.txt"
  curl --silent --show-error --verbose --ssl-reqd --insecure "$url" \
    --user "lettermint:$2" --mail-from sender@example.com --mail-rcpt rcpt@example.com \
    --upload-file "$tmp/mail.txt"
}

delivered=0
for client in swaks python curl; do
  for mode in starttls implicit; do
    expect "$client ($mode) delivers" 0 "${client}_send" "$mode" "$token" "$client $mode"
    delivered=$((delivered + 1))
    expect "$client ($mode) with a bad password gets 535" 1 "${client}_send" "$mode" "lm_wrong" "$client $mode bad"
  done
done

# Every delivery is in the store: the token's log has one accepted smtp_message per delivery
# (written behind; give it a moment).
count=0
for _ in $(seq 1 50); do
  count="$(admin --json token logs smtp --project Mail --outcome accepted --limit 100 \
    | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"] == "smtp_message" and e["message_ids"]))')"
  [ "$count" -ge "$delivered" ] && break
  sleep 0.2
done
if [ "$count" = "$delivered" ]; then
  echo "ok - $delivered messages accepted and logged"; passed=$((passed + 1))
else
  echo "not ok - expected $delivered accepted messages in the token's log, found $count"; failed=$((failed + 1))
fi

# And the messages themselves: envelope, subject, tag and metadata as each client sent them.
if python3 - "$tmp/lettermint.sqlite" <<'PY_CHECK'
import json, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT envelope_from, envelope_to, subject, tag, metadata, raw_mime IS NOT NULL FROM messages"
).fetchall()
by_subject = {row[2]: row for row in rows}
expected = [f"{c} {m}" for c in ("swaks", "python", "curl") for m in ("starttls", "implicit")]
assert sorted(by_subject) == sorted(expected), sorted(by_subject)
for subject, (sender, rcpts, _, tag, metadata, is_mime) in by_subject.items():
    assert sender == "sender@example.com", sender
    assert json.loads(rcpts) == ["rcpt@example.com"], rcpts
    assert is_mime, subject
    if subject.startswith("swaks"):
        assert tag == "interop", (subject, tag)
    if subject.startswith("python"):
        assert json.loads(metadata) == {"order": "42"}, (subject, metadata)
PY_CHECK
then
  echo "ok - the stored messages have their envelope, subject, tag and metadata"; passed=$((passed + 1))
else
  echo "not ok - the stored messages differ from what the clients sent"; failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
