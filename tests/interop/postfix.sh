#!/usr/bin/env bash
# Delivery through a stock MTA: a throwaway Postfix (its own configuration, queue and maildir in a
# temporary directory, listening on 127.0.0.1 with STARTTLS and a self-signed certificate) is the
# smarthost. A message sent through the Sending API (and one submitted over SMTP-like raw MIME is
# covered by the Rust tests) is delivered by mail-worker with STARTTLS required, trusting the
# certificate through --smarthost-ca-file; Postfix writes it into its maildir, one copy per
# recipient, Bcc included in the envelope and absent from the headers. The API then shows the
# message as delivered with Postfix's reply. Postfix takes two recipients per transaction here,
# so a message to five goes in three transactions, one copy per recipient.
#
#   tests/interop/postfix.sh                  # uses target/debug/{api-server,mail-worker}
#   BIN_DIR=target/release tests/interop/postfix.sh
#
# Needs root (Postfix's master runs as root and drops to the `postfix` user), postfix, openssl,
# curl and python3. Debian: apt-get install postfix openssl curl python3.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${BIN_DIR:-$root/target/debug}"
for tool in postfix postconf openssl curl python3 script; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required (Debian: apt-get install postfix openssl curl python3 bsdutils)" >&2; exit 1; }
done
for exe in api-server mail-worker; do
  [ -x "$bin/$exe" ] || { echo "$bin/$exe is missing: cargo build -p api-server -p mail-worker" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "Postfix needs root to start its master process" >&2; exit 1; }

tmp="$(mktemp -d /tmp/lettermint-postfix.XXXXXX)"
chmod 755 "$tmp"
conf="$tmp/postfix"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  script -qc "postfix -c $conf stop" /dev/null >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free port for Postfix's smtpd.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

mkdir -p "$conf" "$tmp/spool" "$tmp/data" "$tmp/mail"
# A test CA, and a server certificate for `localhost` signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$conf/ca.key" -out "$conf/ca.pem" -days 2 \
  -subj "/CN=Lettermint interop CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$conf/key.pem" -out "$conf/server.csr" \
  -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$conf/ext"
openssl x509 -req -in "$conf/server.csr" -CA "$conf/ca.pem" -CAkey "$conf/ca.key" -CAcreateserial \
  -out "$conf/cert.pem" -days 2 -extfile "$conf/ext" 2>/dev/null
cp /etc/postfix/master.cf "$conf/master.cf"
: >"$conf/main.cf"
chown -R postfix:postfix "$tmp/mail" "$tmp/data"
postconf -c "$conf" -e \
  "compatibility_level = 3.6" \
  "queue_directory = $tmp/spool" \
  "data_directory = $tmp/data" \
  "myhostname = localhost" \
  "inet_interfaces = 127.0.0.1" \
  "inet_protocols = ipv4" \
  "mydestination =" \
  "virtual_mailbox_domains = example.test" \
  "virtual_mailbox_base = $tmp/mail" \
  "virtual_mailbox_maps = static:inbox/" \
  "virtual_uid_maps = static:$(id -u postfix)" \
  "virtual_gid_maps = static:$(id -g postfix)" \
  "smtpd_tls_cert_file = $conf/cert.pem" \
  "smtpd_tls_key_file = $conf/key.pem" \
  "smtpd_tls_security_level = may" \
  "smtpd_tls_received_header = yes" \
  "maillog_file_prefixes = /tmp" \
  "maillog_file = $tmp/postfix.log" \
  "alias_maps =" \
  "alias_database =" \
  "smtpd_recipient_limit = 2"
# smtpd on the free port instead of 25; nothing chrooted (the queue is a temporary directory).
postconf -c "$conf" -M "smtp/inet=$port inet n - n - - smtpd"
postconf -c "$conf" -F '*/*/chroot = n'
# Postfix reports to a terminal or syslog only; `script` gives it a terminal.
script -qc "postfix -c $conf check" /dev/null
script -qc "postfix -c $conf start" /dev/null >/dev/null
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done
echo "postfix: smtpd with STARTTLS on 127.0.0.1:$port, maildir $tmp/mail/inbox"

db="sqlite://$tmp/lettermint.sqlite"
"$bin/api-server" --database-url "$db" --listen 127.0.0.1:0 >"$tmp/api.out" 2>"$tmp/api.err" &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q '^  team token: ' "$tmp/api.out" 2>/dev/null && break
  sleep 0.1
done
base="$(sed -n 's|^listening on \(http://[^ ]*\).*|\1|p' "$tmp/api.out")"
token="$(sed -n 's|^  project token: ||p' "$tmp/api.out")"
[ -n "$base" ] && [ -n "$token" ] || { echo "api-server did not start:"; cat "$tmp/api.out" "$tmp/api.err"; exit 1; }

sent="$(curl -sS "$base/v1/send" -H "x-lettermint-token: $token" -H 'content-type: application/json' -d '{
  "from": "Shop <shop@example.com>",
  "to": ["Ann <ann@example.test>"],
  "bcc": ["audit@example.test"],
  "subject": "Delivered through Postfix",
  "text": "It arrived.",
  "html": "<p>It arrived.</p>",
  "headers": {"X-Campaign": "interop"},
  "metadata": {"order": "42"},
  "tag": "interop"
}')"
id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["message_id"])' <<<"$sent")"
echo "accepted: $id"

# Five recipients, and Postfix takes two per transaction (smtpd_recipient_limit above): its
# "452 4.5.3 Error: too many recipients" sends the others to the next transaction.
sent="$(curl -sS "$base/v1/send" -H "x-lettermint-token: $token" -H 'content-type: application/json' -d '{
  "from": "shop@example.com",
  "to": ["r1@example.test", "r2@example.test", "r3@example.test"],
  "cc": ["r4@example.test"],
  "bcc": ["r5@example.test"],
  "subject": "Five recipients, two per transaction",
  "text": "Each of you gets one copy."
}')"
many="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["message_id"])' <<<"$sent")"
echo "accepted: $many"

"$bin/mail-worker" --database-url "$db" --smarthost "smtp://localhost:$port" \
  --smarthost-ca-file "$conf/ca.pem" --admin-listen 127.0.0.1:0 --idle-poll-ms 100 \
  >"$tmp/worker.out" 2>"$tmp/worker.err" &
pids+=($!)

fail() { echo "not ok - $1"; echo "--- mail-worker:"; tail -20 "$tmp/worker.err"; echo "--- postfix:"; tail -20 "$tmp/postfix.log" 2>/dev/null; exit 1; }

all=()
for _ in $(seq 1 300); do
  mapfile -t all < <(find "$tmp/mail/inbox/new" -type f 2>/dev/null)
  [ "${#all[@]}" -ge 7 ] && break
  sleep 0.1
done
sleep 0.5
mapfile -t all < <(find "$tmp/mail/inbox/new" -type f 2>/dev/null)
[ "${#all[@]}" -eq 7 ] || fail "Postfix delivered ${#all[@]} copies, expected 7 (2 + 5)"
mapfile -t files < <(grep -l "^X-LM-Message-Id: $id" "${all[@]}")
[ "${#files[@]}" -eq 2 ] || fail "Postfix delivered ${#files[@]} copies of $id, expected 2 (to and bcc)"
echo "ok - Postfix delivered one copy per recipient"
mapfile -t copies < <(grep -l "^X-LM-Message-Id: $many" "${all[@]}")
got="$(grep -h '^Delivered-To: ' "${copies[@]}" | sort | tr '\n' ' ')"
want="Delivered-To: r1@example.test Delivered-To: r2@example.test Delivered-To: r3@example.test Delivered-To: r4@example.test Delivered-To: r5@example.test "
[ "$got" = "$want" ] || fail "copies of the five-recipient message: $got"
# Postfix queued each transaction on its own: 2 + 2 + 1 recipients for this message, beside the
# first message's one transaction of 2.
queued="$(sed -n 's/.*postfix\/qmgr.*nrcpt=\([0-9]*\).*/\1/p' "$tmp/postfix.log" | sort | tr '\n' ' ')"
[ "$queued" = "1 2 2 2 " ] || fail "Postfix's transactions held these numbers of recipients: $queued"
echo "ok - five recipients through a limit of two per transaction: one copy each"

for f in "${files[@]}"; do
  grep -q '^Subject: Delivered through Postfix' "$f" || fail "subject in $f"
  grep -q "^X-LM-Message-Id: $id" "$f" || fail "X-LM-Message-Id in $f"
  grep -q '^X-Campaign: interop' "$f" || fail "custom header in $f"
  grep -qi '^Bcc:' "$f" && fail "a Bcc header went out in $f"
  grep -Eqi '^(To|Cc):.*audit@example.test' "$f" && fail "the Bcc address is in a header of $f"
  grep -qi '^X-LM-Metadata' "$f" && fail "metadata became a header in $f"
  grep -q 'TLS' "$f" || fail "Postfix's Received line records no TLS in $f"
done
grep -q '^Delivered-To: ann@example.test' "${files[@]}" || fail "no copy for ann@example.test"
grep -q '^Delivered-To: audit@example.test' "${files[@]}" || fail "no copy for the Bcc recipient"
echo "ok - headers, Bcc only in the envelope, TLS on the hop"

status=""
for _ in $(seq 1 100); do
  shown="$(curl -sS "$base/v1/messages/$id" -H "x-lettermint-token: $token")"
  status="$(python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["status"], m["attempts"], m["last_reply"])' <<<"$shown")"
  case "$status" in delivered*) break ;; esac
  sleep 0.1
done
case "$status" in
  "delivered 1 250 "*"queued as"*) echo "ok - the API shows it delivered: $status" ;;
  *) fail "message status: $status" ;;
esac
shown="$(curl -sS "$base/v1/messages/$many" -H "x-lettermint-token: $token")"
status="$(python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["status"], m["attempts"])' <<<"$shown")"
[ "$status" = "delivered 1" ] || fail "five-recipient message status: $status"
echo "ok - the five-recipient message is delivered in one attempt"
echo "postfix interop: all passed"
