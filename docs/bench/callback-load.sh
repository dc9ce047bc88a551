#!/usr/bin/env bash
# Load test of the official-account callback against MySQL/MariaDB: the
# durable inbox (new events, half retries, all retries) beside its peers,
# the callback as silenceper/wechat's README writes it with no storage and
# with a gorm INSERT per event (docs/bench/callbackpeer), and /healthz as
# the ceiling, all in one run with the same requests: signed, encrypted
# (safe-mode) subscribe events made by docs/bench/callbacksign.
#   docs/bench/callback-load.sh [connections] [seconds per round]
# Needs wrk and a MariaDB/MySQL on 127.0.0.1:3306 (root, no password).
# The service runs API-only (LOYALTY_WORKERS=false unless set): it stores
# events and answers WeChat; applying them is the workers' job elsewhere.
# LOYALTY_DEBUG_ADDR=127.0.0.1:6060 also takes a CPU profile of the server
# (the service, or the peer on PEER_DEBUG_ADDR) in each callback round
# ($OUT/<round>.pprof; $OUT is printed at the end).
# SPLIT_CPUS=1 pins the local mariadbd to the second CPU and the servers
# and wrk to the first, as if the database ran on its own host (as it does
# in production); the pinning is undone on exit. Needs root and taskset.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${1:-200}
SECS=${2:-20}
DB=${LOAD_DB:-loyalty_load}
PEERDB=${DB}_peer
ADDR=${LOAD_ADDR:-127.0.0.1:18080}
SDK_ADDR=${LOAD_SDK_ADDR:-127.0.0.1:18081}
GORM_ADDR=${LOAD_GORM_ADDR:-127.0.0.1:18082}
TOKEN=loadtoken
APPID=wx00000000000a11ad
AESKEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
TO=gh_0000000a11ad
THREADS=2
# Fresh requests per wrk thread for the "new" round (the "half" round has
# half as many more): enough for 16k/s per thread. Every fresh request
# sent takes an entry of the service's in-memory nonce cache (1,048,576
# at most), which the defaults stay under.
export CALLBACK_PER_THREAD=${CALLBACK_PER_THREAD:-$((SECS * 16000))}
OUT=$(mktemp -d)

mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB; DROP DATABASE IF EXISTS $PEERDB; CREATE DATABASE $PEERDB"
PIN=()
if [ "${SPLIT_CPUS:-}" = 1 ]; then
  DBPID=$(pidof mariadbd)
  taskset -a -p -c 1 "$DBPID" >/dev/null
  PIN=(taskset -c 0)
fi
go build -o /tmp/loyalty-load ./cmd/loyalty
go build -o /tmp/loyalty-load-peer ./docs/bench/callbackpeer
go build -o /tmp/loyalty-load-sign ./docs/bench/callbacksign
export LOYALTY_WORKERS=${LOYALTY_WORKERS:-false} LOYALTY_DEBUG_ADDR=${LOYALTY_DEBUG_ADDR:-} LOYALTY_HTTP_ADDR=$ADDR LOYALTY_DB_DRIVER=mysql LOYALTY_DB_DSN="root@tcp(127.0.0.1:3306)/$DB"
export LOYALTY_SANDBOX=on LOYALTY_SECRET_KEY=$(printf 'k%.0s' {1..40}) LOYALTY_DATA_DIR=$(mktemp -d)
export LOYALTY_WECHAT_APP_ID=$APPID LOYALTY_WECHAT_APP_SECRET=$(printf 'a%.0s' {1..32}) LOYALTY_WECHAT_TOKEN=$TOKEN LOYALTY_WECHAT_AES_KEY=$AESKEY
"${PIN[@]}" /tmp/loyalty-load >/dev/null 2>"$OUT/service.log" &
PID=$!
PEER_DEBUG_ADDR=${PEER_DEBUG_ADDR:-127.0.0.1:16061}
"${PIN[@]}" /tmp/loyalty-load-peer -debug-addr "${LOYALTY_DEBUG_ADDR:+$PEER_DEBUG_ADDR}" -sdk-addr "$SDK_ADDR" -gorm-addr "$GORM_ADDR" -app-id $APPID -token $TOKEN -aes-key $AESKEY \
  -dsn "root@tcp(127.0.0.1:3306)/$PEERDB" 2>"$OUT/peer.log" &
PEERPID=$!
trap 'kill $PID $PEERPID 2>/dev/null || true; [ -z "${DBPID:-}" ] || taskset -a -p -c 0-1 "$DBPID" >/dev/null' EXIT
for _ in $(seq 50); do curl -sf "http://$ADDR/readyz" >/dev/null && break; sleep 0.2; done
MID=$(mariadb -h127.0.0.1 -uroot -N -e "SELECT id FROM $DB.merchants WHERE oa_app_id='$APPID'")
# Timestamp and CreateTime a few minutes ahead: the service accepts them
# within 5 minutes of its clock, so the requests stay valid for about 9
# minutes, retries included (WeChat retries within seconds, with the
# timestamp of the first push).
TS=$(($(date +%s) + 240))
/tmp/loyalty-load-sign -token $TOKEN -timestamp $TS -app-id $APPID -aes-key $AESKEY -to $TO \
  -openid-prefix "o_load_${TS}_" -n $((THREADS * CALLBACK_PER_THREAD * 3 / 2)) >"$OUT/reqs"
export CALLBACK_REQS=$OUT/reqs CALLBACK_TS=$TS CALLBACK_TO=$TO CALLBACK_THREADS=$THREADS

# round NAME URL MODE: one wrk run (MODE "-": a plain GET, no script); its
# output goes to $OUT/NAME, with the CPU time the service, the peers and
# mariadbd (whoever else's statements it ran too) took per request, from
# /proc (10 ms ticks).
MARIADB_PID=$(pidof -s mariadbd || true)
ticks() { if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
round() {
  local host path s0 p0 m0 reqs
  host=$(echo "$2" | sed -E 's#^(http://[^/]+).*#\1#')
  path=$(echo "$2" | sed -E 's#^http://[^/]+##')
  local script=(-s docs/bench/callback.lua)
  [ "$3" != - ] || script=()
  echo "== $1, $CONNS connections, ${SECS}s"
  s0=$(ticks $PID) p0=$(ticks $PEERPID) m0=$(ticks "$MARIADB_PID")
  if [ -n "$LOYALTY_DEBUG_ADDR" ]; then
    # A CPU profile of the server under load, over most of the round: from
    # when its CPU time starts to climb (wrk builds its requests first).
    local pid=$PID dbg=$LOYALTY_DEBUG_ADDR
    [ "${1#sdk}" = "$1" ] || pid=$PEERPID dbg=$PEER_DEBUG_ADDR
    [ "$3" = - ] || (t=$(ticks $pid); while sleep 0.5; do n=$(ticks $pid); [ $((n - t)) -lt 20 ] || break; t=$n; done
      curl -sf -o "$OUT/$1.pprof" "http://$dbg/debug/pprof/profile?seconds=$((SECS * 2 / 3))") &
  fi
  CALLBACK_MODE=$3 CALLBACK_BASE=$path "${PIN[@]}" wrk -t$THREADS -c"$CONNS" -d"${SECS}s" --latency "${script[@]}" \
    "$host$path" | tee "$OUT/$1"
  reqs=$(awk '/requests in/ {print $1}' "$OUT/$1")
  echo "cpu per request (µs): service $((($(ticks $PID) - s0) * 1000000 / CLK / reqs))" \
    "peer $((($(ticks $PEERPID) - p0) * 1000000 / CLK / reqs))" \
    "mariadbd $((($(ticks "$MARIADB_PID") - m0) * 1000000 / CLK / reqs))" | tee -a "$OUT/$1"
}
CLK=$(getconf CLK_TCK)
round healthz "http://$ADDR/healthz" -
export CALLBACK_SENT_OUT=$OUT/sent CALLBACK_SENT_IN=$OUT/sent
round inbox-new "http://$ADDR/wechat/$MID/callback" new
export CALLBACK_SENT_OUT=
round inbox-half-retries "http://$ADDR/wechat/$MID/callback" half
round inbox-all-retries "http://$ADDR/wechat/$MID/callback" retries
round sdk-no-storage "http://$SDK_ADDR/wechat/callback" new
round sdk-gorm-insert "http://$GORM_ADDR/wechat/callback" new

# Every fresh request answered success must be stored once (the unique key
# makes a second row impossible); retries add none. (A request in flight
# when a round ends counts as sent and may never have reached the service;
# the all-retries round sends the new round's again.)
fresh=$(grep -h '^callback.lua: mode \(new\|half\)' "$OUT/inbox-new" "$OUT/inbox-half-retries" | awk '{s += $4} END {print s}')
stored=$(mariadb -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM $DB.wechat_events")
echo "== inbox: $fresh fresh requests sent, $stored events stored"
echo "== output and profiles in $OUT"
echo "== gorm peer: $(mariadb -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM $PEERDB.events") rows"

echo
echo "| round | req/s | p50 | p99 | non-2xx | socket errors | CPU µs/req: service, peer, mariadbd |"
echo "|---|---:|---:|---:|---:|---:|---|"
for r in healthz inbox-new inbox-half-retries inbox-all-retries sdk-no-storage sdk-gorm-insert; do
  awk -v name="$r" '
    /Requests\/sec:/ {rps = $2}
    $1 == "50%" {p50 = $2}
    $1 == "99%" {p99 = $2}
    /Non-2xx/ {non2xx = $NF}
    /Socket errors/ {sock = $0; sub(/.*Socket errors: /, "", sock)}
    /^cpu per request/ {cpu = $6 ", " $8 ", " $10}
    END {printf "| %s | %d | %s | %s | %d | %s | %s |\n", name, rps, p50, p99, non2xx, (sock == "" ? "0" : sock), cpu}
  ' "$OUT/$r"
done
