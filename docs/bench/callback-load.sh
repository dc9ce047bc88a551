#!/usr/bin/env bash
# Load test of the official-account callback against MySQL/MariaDB, with
# /healthz on the same server in the same run as the ceiling.
#   docs/bench/callback-load.sh [connections] [seconds]
# Needs wrk and a MariaDB/MySQL on 127.0.0.1:3306 (root, no password).
# SPLIT_CPUS=1 pins the local mariadbd to the second CPU and the service
# and wrk to the first, as if the database ran on its own host (as it does
# in production); the pinning is undone on exit. Needs root and taskset.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${1:-200}
SECS=${2:-20}
DB=${LOAD_DB:-loyalty_load}
ADDR=${LOAD_ADDR:-127.0.0.1:18080}
TOKEN=loadtoken
APPID=wx00000000000a11ad

mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
PIN=()
if [ "${SPLIT_CPUS:-}" = 1 ]; then
  DBPID=$(pidof mariadbd)
  taskset -a -p -c 1 "$DBPID" >/dev/null
  PIN=(taskset -c 0)
fi
go build -o /tmp/loyalty-load ./cmd/loyalty
export LOYALTY_WORKERS=${LOYALTY_WORKERS:-true} LOYALTY_DEBUG_ADDR=${LOYALTY_DEBUG_ADDR:-} LOYALTY_HTTP_ADDR=$ADDR LOYALTY_DB_DRIVER=mysql LOYALTY_DB_DSN="root@tcp(127.0.0.1:3306)/$DB"
export LOYALTY_SANDBOX=on LOYALTY_SECRET_KEY=$(printf 'k%.0s' {1..40}) LOYALTY_DATA_DIR=$(mktemp -d)
export LOYALTY_WECHAT_APP_ID=$APPID LOYALTY_WECHAT_APP_SECRET=$(printf 'a%.0s' {1..32}) LOYALTY_WECHAT_TOKEN=$TOKEN
"${PIN[@]}" /tmp/loyalty-load >/dev/null 2>/tmp/loyalty-load.log &
PID=$!
trap 'kill $PID 2>/dev/null || true; [ -z "${DBPID:-}" ] || taskset -a -p -c 0-1 "$DBPID" >/dev/null' EXIT
for _ in $(seq 50); do curl -sf "http://$ADDR/readyz" >/dev/null && break; sleep 0.2; done
MID=$(mariadb -h127.0.0.1 -uroot -N -e "SELECT id FROM $DB.merchants WHERE oa_app_id='$APPID'")
TS=$(date +%s)
# Each request has its own signed query (the service refuses a signed query
# with a second message); the two wrk threads take halves of the file.
export CALLBACK_PER_THREAD=${CALLBACK_PER_THREAD:-400000}
go run ./docs/bench/callbacksign -token "$TOKEN" -timestamp "$TS" -n $((2 * CALLBACK_PER_THREAD)) >/tmp/loyalty-load-sigs
export CALLBACK_BASE="/wechat/$MID/callback" CALLBACK_SIGS=/tmp/loyalty-load-sigs CALLBACK_TS=$TS

echo "== /healthz, $CONNS connections, ${SECS}s"
"${PIN[@]}" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "http://$ADDR/healthz"
echo "== callback (signed subscribe, new follower each), $CONNS connections, ${SECS}s"
"${PIN[@]}" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s docs/bench/callback.lua "http://$ADDR"
echo "== stored events: $(mariadb -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM $DB.wechat_events")," \
  "members so far: $(mariadb -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM $DB.members")"
