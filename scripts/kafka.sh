#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller on loopback) from Maven Central jars.
# Usage: scripts/kafka.sh fetch|start|stop|status|version|logs
# Idempotent: `start` reuses a broker already answering on the port; `fetch` reuses the jar cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KAFKA_CACHE_DIR:-$root/.cache/kafka}
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
# The secured listeners (tests of WEBHOOKS_KAFKA_SECURITY_PROTOCOL): SASL_SSL and SSL with mTLS.
sasl_ssl_port=${KAFKA_SASL_SSL_PORT:-$((port + 2))}
ssl_port=${KAFKA_SSL_PORT:-$((port + 3))}
# The one test user: a SCRAM-SHA-256 and -512 credential and a PLAIN user, same password.
sasl_user=webhooks
sasl_password=webhooks-test-secret
heap=${KAFKA_HEAP:-768m}
libs=$cache/libs
run=$cache/run-$port
data=$run/data
logs=$run/logs
pidfile=$run/kafka.pid
tls=$run/tls
python=${PYTHON:-$root/.venv/bin/python}
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

# Where the tests find the secured listeners, their CA and client certificate, and the user.
write_listeners() {
  cat > "$run/listeners.json" <<JSON
{"plaintext": "127.0.0.1:$port", "sasl_ssl": "127.0.0.1:$sasl_ssl_port",
 "ssl": "127.0.0.1:$ssl_port", "tls_dir": "$tls",
 "sasl_username": "$sasl_user", "sasl_password": "$sasl_password"}
JSON
}

start() {
  fetch
  if port_open "$port"; then
    if [ -f "$run/listeners.json" ] && port_open "$sasl_ssl_port" && port_open "$ssl_port"; then
      log "a broker already answers on 127.0.0.1:$port; reusing it"
      return 0
    fi
    log "a broker answers on 127.0.0.1:$port but not one started by this checkout with the"
    log "SASL_SSL ($sasl_ssl_port) and SSL ($ssl_port) listeners: stop it, or run"
    log "'scripts/kafka.sh reset' if it is this checkout's older broker, or set KAFKA_PORT"
    exit 1
  fi
  mkdir -p "$run" "$logs"
  [ -x "$python" ] || python=python3
  "$python" "$root/scripts/kafka_tls.py" "$tls" || {
    log "could not write the test certificates (needs the project venv: make install)"; exit 1; }
  sed -e "s:@PORT@:$port:g" -e "s:@CONTROLLER_PORT@:$controller_port:g" -e "s:@DATA_DIR@:$data:g" \
    -e "s:@SASL_SSL_PORT@:$sasl_ssl_port:g" -e "s:@SSL_PORT@:$ssl_port:g" -e "s:@TLS_DIR@:$tls:g" \
    -e "s:@SASL_USER@:$sasl_user:g" -e "s:@SASL_PASSWORD@:$sasl_password:g" \
    "$root/kafka/server.properties.in" > "$run/server.properties"
  local jvm=(java -Xms256m "-Xmx$heap" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$root/kafka/log4j2.yaml" "-Dkafka.logs.dir=$logs" -cp "$libs/*")
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id=$("${jvm[@]}" kafka.tools.StorageTool random-uuid)
    log "formatting KRaft storage in $data (cluster $cluster_id)"
    "${jvm[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$run/server.properties" \
      --add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$sasl_password]" \
      --add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$sasl_password]" \
      >> "$logs/format.log" 2>&1
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
    if port_open "$port" && port_open "$sasl_ssl_port" && port_open "$ssl_port" && grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$logs/server.log" 2>/dev/null; then
      write_listeners
      log "broker is up (pid $(cat "$pidfile")); SASL_SSL on $sasl_ssl_port, mTLS on $ssl_port"
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
