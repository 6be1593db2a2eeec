#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller on loopback) from Maven Central jars.
# Usage: scripts/kafka.sh fetch|start|stop|status|version|logs
# Idempotent: `start` reuses a broker already answering on the port; `fetch` reuses the jar cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KAFKA_CACHE_DIR:-$root/.cache/kafka}
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
heap=${KAFKA_HEAP:-768m}
libs=$cache/libs
run=$cache/run-$port
data=$run/data
logs=$run/logs
pidfile=$run/kafka.pid
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/kafka/pom.xml")

log() { printf 'kafka.sh: %s\n' "$*" >&2; }


fetch() {
  if [ -f "$libs/.complete-$version" ]; then return 0; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required to fetch Kafka jars"; exit 1; }
  command -v java >/dev/null || { log "Java 17+ is required to run Kafka"; exit 1; }
  log "fetching Apache Kafka $version and log4j2 from Maven Central into $libs"
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -f "$root/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$libs/.complete-$version"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  fetch
  if port_open "$port"; then
    log "a broker already answers on 127.0.0.1:$port; reusing it"
    return 0
  fi
  mkdir -p "$run" "$logs"
  sed -e "s:@PORT@:$port:g" -e "s:@CONTROLLER_PORT@:$controller_port:g" -e "s:@DATA_DIR@:$data:g" \
    "$root/kafka/server.properties.in" > "$run/server.properties"
  local jvm=(java -Xms256m "-Xmx$heap" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$root/kafka/log4j2.yaml" "-Dkafka.logs.dir=$logs" -cp "$libs/*")
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id=$("${jvm[@]}" kafka.tools.StorageTool random-uuid)
    log "formatting KRaft storage in $data (cluster $cluster_id)"
    "${jvm[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$run/server.properties" >> "$logs/format.log" 2>&1
  fi
  log "starting Kafka $version on 127.0.0.1:$port (logs: $logs/server.log)"
  nohup "${jvm[@]}" kafka.Kafka "$run/server.properties" > "$logs/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "the broker exited during start-up; last lines of its logs:"
      tail -n 40 "$logs/stdout.log" "$logs/server.log" >&2 || true
      exit 1
    fi
    if port_open "$port" && grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$logs/server.log" 2>/dev/null; then
      log "broker is up (pid $(cat "$pidfile"))"
      return 0
    fi
    sleep 0.5
  done
  log "the broker did not answer within 60 s; last lines of its log:"
  tail -n 40 "$logs/server.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    local pid; pid=$(cat "$pidfile")
    log "stopping broker pid $pid"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  else
    log "no broker started by this script is running on port $port"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if port_open "$port"; then echo "up on 127.0.0.1:$port"; else echo "down"; exit 1; fi ;;
  version) echo "$version" ;;
  logs) tail -n "${2:-60}" "$logs/server.log" ;;
  reset) stop; rm -rf "$run" ;;
  *) echo "usage: $0 fetch|start|stop|status|version|logs [N]|reset" >&2; exit 2 ;;
esac
