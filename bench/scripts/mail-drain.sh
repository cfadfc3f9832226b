#!/usr/bin/env bash
# How long the outbox takes to drain N queued mails to a local SMTP listener.
#
# Queues N reset mails while the SMTP server is down (they fail once and back off for an hour),
# stops tessera, makes them due, starts a sink listener and tessera again, and times from the
# start until the outbox is empty. Needs the release binary, sqlite3 and python3 (smtpd).
#   cargo build --release && bash bench/scripts/mail-drain.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
BIN=target/release/tessera
DB=$(mktemp -u /tmp/tessera-drain-XXXXXX).db
SMTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HTTP=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export TESSERA_DATABASE_URL="sqlite://$DB?mode=rwc" TESSERA_LISTEN=$HTTP RUST_LOG=error \
  TESSERA_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" TESSERA_MAIL_RETRY_DELAY=1h TESSERA_RATE_LIMIT=0
cleanup() { kill "${SERVER:-}" "${SINK:-}" 2>/dev/null || true; rm -f "$DB" "$DB-wal" "$DB-shm"; }
trap cleanup EXIT

wait_ready() { for _ in $(seq 200); do curl -sf "http://$HTTP/readyz" >/dev/null && return; sleep 0.05; done; exit 1; }
queued() { sqlite3 "$DB" 'SELECT COUNT(*) FROM outbox'; }

$BIN & SERVER=$!
wait_ready
curl -sf -X POST "http://$HTTP/v1/auth/register" -H 'Content-Type: application/json' \
  -d '{"username": "drain", "email": "drain@example.com", "password": "a long enough password"}' >/dev/null
for _ in $(seq "$N"); do printf '{"username": "drain"}\n'; done |
  xargs -d '\n' -P 8 -I{} curl -sf -o /dev/null -X POST "http://$HTTP/v1/auth/password/forgot" -H 'Content-Type: application/json' -d {}
until [ "$(queued)" -ge $((N + 1)) ]; do sleep 0.1; done
kill $SERVER; wait $SERVER || true
echo "queued $(queued) mails (the registration's verification and $N reset links)" >&2
sqlite3 "$DB" 'UPDATE outbox SET next_attempt_at = 0, lease_owner = NULL, lease_until = NULL'

python3 -W ignore -c "
import smtpd, asyncore
class Sink(smtpd.SMTPServer):
    def process_message(self, *args, **kwargs): return None
Sink(('127.0.0.1', $SMTP_PORT), None)
asyncore.loop()" & SINK=$!
sleep 0.5
START=$(date +%s.%N)
$BIN & SERVER=$!
until [ "$(queued)" -eq 0 ]; do sleep 0.02; done
END=$(date +%s.%N)
python3 -c "s=$END-$START; print(f'drained $((N + 1)) mails in {s:.2f} s ({($N + 1)/s:.0f} mails/s), start-up included')"
