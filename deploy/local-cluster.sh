#!/usr/bin/env bash
# Starts a local Atoll cluster for trying things out: three receivers that
# find each other by gossip (replication factor 3) and a querier.
#
#   deploy/local-cluster.sh up      # build, start, print where to point Prometheus and Grafana
#   deploy/local-cluster.sh status  # the ring as receiver 1 sees it
#   deploy/local-cluster.sh down    # stop everything (data stays under $DATA)
#
# Ports: receiver i (1..3) listens on 1i291 (remote write), 1i902 (HTTP),
# 1i901 (gRPC), 1i946 (gossip); the querier on 19902 (HTTP) and 19946.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-./data/cluster}
BIN=${BIN:-./bin/atoll}
PIDS="$DATA/pids"
# Every member joins through all three receivers, so any one may be down.
JOIN="--ring.join=127.0.0.1:11946 --ring.join=127.0.0.1:12946 --ring.join=127.0.0.1:13946"

up() {
  make build >/dev/null
  mkdir -p "$DATA"
  : > "$PIDS"
  for i in 1 2 3; do
    "$BIN" receive \
      --data-dir="$DATA/receive-$i" \
      --http-address=127.0.0.1:1${i}902 --grpc-address=127.0.0.1:1${i}901 \
      --remote-write.address=127.0.0.1:1${i}291 \
      --ring.listen-address=127.0.0.1:1${i}946 $JOIN \
      --ring.instance-id=receive-$i --receive.replication-factor=3 \
      >"$DATA/receive-$i.log" 2>&1 &
    echo $! >> "$PIDS"
  done
  "$BIN" query \
    --http-address=127.0.0.1:19902 \
    --ring.listen-address=127.0.0.1:19946 $JOIN \
    --ring.instance-id=query-1 \
    >"$DATA/query.log" 2>&1 &
  echo $! >> "$PIDS"
  for url in http://127.0.0.1:11902 http://127.0.0.1:12902 http://127.0.0.1:13902 http://127.0.0.1:19902; do
    for _ in $(seq 100); do curl -sf "$url/-/ready" >/dev/null && break; sleep 0.2; done
  done
  cat <<MSG
Atoll cluster is up (logs and data in $DATA).
  Prometheus remote_write url: http://127.0.0.1:11291/api/v1/receive   (any receiver: 12291, 13291 work too)
  PromQL / Grafana data source: http://127.0.0.1:19902
  Ring:                         http://127.0.0.1:11902/ring
MSG
}

down() {
  [ -f "$PIDS" ] || { echo "no cluster running"; return; }
  while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$PIDS"
  while read -r pid; do while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; done < "$PIDS"
  rm -f "$PIDS"
  echo "stopped"
}

status() {
  curl -s -H 'Accept: application/json' http://127.0.0.1:11902/ring
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
