#!/usr/bin/env bash
# The production topology on one machine without Docker, from Debian's packages and the
# project's venv, on loopback ports: mosquitto with accounts and the ACL of
# deploy/mosquitto/acl, Redis with its append-only file, a replica and three sentinels
# (the daemons find the primary through Sentinel), and two broadcaster daemons sharing
# both (the repository's playbooks, templates and log channels).
#
#   deploy/local-stack.sh up       start it (made afresh: new passwords and secrets)
#   deploy/local-stack.sh status   what runs, and each daemon's /healthz
#   deploy/local-stack.sh down     stop everything; nothing is left running
#
# Everything lives in $LOCAL_STACK_DIR (default var/local-stack): the generated
# credentials (credentials.env: the fire brigade's MQTT account, the trigger secret, the
# API token), the configuration, the data and each process's log. Ports:
# LOCAL_STACK_MQTT_PORT (18831), LOCAL_STACK_REDIS_PORT (16380), LOCAL_STACK_REPLICA_PORT
# (16381), LOCAL_STACK_SENTINEL_PORTS ("26380 26381 26382"), LOCAL_STACK_HTTP_PORTS
# ("18081 18082").
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${LOCAL_STACK_DIR:-$repo/var/local-stack}"
mqtt_port="${LOCAL_STACK_MQTT_PORT:-18831}"
redis_port="${LOCAL_STACK_REDIS_PORT:-16380}"
replica_port="${LOCAL_STACK_REPLICA_PORT:-16381}"
read -r -a sentinel_ports <<<"${LOCAL_STACK_SENTINEL_PORTS:-26380 26381 26382}"
read -r -a http_ports <<<"${LOCAL_STACK_HTTP_PORTS:-18081 18082}"
names=(a b)

say() { printf '%s\n' "$*"; }
fail() { printf 'local-stack: %s\n' "$*" >&2; exit 1; }
secret() { openssl rand -hex 24; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

find_tool() {
  command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } ||
    fail "$1 is missing: run 'bash scripts/bootstrap.sh --test' (installs mosquitto and redis-server)"
}

wait_until() {  # wait_until SECONDS WHAT COMMAND...: poll a real state, never a blind sleep
  local until=$((SECONDS + $1)) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$until" ] || fail "$what did not come up in time; see $dir/*.log"
    sleep 0.2
  done
}

up() {
  if pid_alive "$dir/mosquitto.pid" || pid_alive "$dir/redis.pid"; then
    fail "already up in $dir: 'deploy/local-stack.sh down' first"
  fi
  local mosquitto redis_server passwd python="$repo/.venv/bin/python"
  mosquitto="$(find_tool mosquitto)"
  redis_server="$(find_tool redis-server)"
  passwd="$(find_tool mosquitto_passwd)"
  [ -x "$python" ] || fail "the project's venv is missing: run 'bash scripts/bootstrap.sh' first"
  rm -rf "$dir" && mkdir -p "$dir/mosquitto" "$dir/redis" && chmod 700 "$dir"

  local fire_pw daemon_pw redis_pw trigger_secret api_token session_secret
  fire_pw="$(secret)"; daemon_pw="$(secret)"; redis_pw="$(secret)"
  trigger_secret="$(secret)"; api_token="$(secret)"; session_secret="$(secret)"
  umask 077
  cat >"$dir/credentials.env" <<EOF
# The local stack's secrets, made by 'up'; the daemons read them from their environment.
MQTT_URL=mqtt://127.0.0.1:$mqtt_port
FIREBRIGADE_USER=firebrigade
FIREBRIGADE_PASSWORD=$fire_pw
BROADCASTER_MQTT_PASSWORD=$daemon_pw
REDIS_PASSWORD=$redis_pw
TRIGGER_SECRET=$trigger_secret
API_TOKEN=$api_token
CONSOLE_SESSION_SECRET=$session_secret
HTTP_PORTS="${http_ports[*]}"
EOF

  # The broker: the compose file's settings, on loopback, with the same ACL.
  "$passwd" -c -b "$dir/mosquitto/passwd" firebrigade "$fire_pw" >/dev/null 2>&1
  "$passwd" -b "$dir/mosquitto/passwd" broadcaster "$daemon_pw" >/dev/null 2>&1
  sed -e "s|^listener 1883$|listener $mqtt_port 127.0.0.1|" \
      -e "s|^password_file .*|password_file $dir/mosquitto/passwd|" \
      -e "s|^acl_file .*|acl_file $repo/deploy/mosquitto/acl|" \
      -e "s|^persistence_location .*|persistence_location $dir/mosquitto/|" \
      -e "s|^log_dest stdout$|log_dest file $dir/mosquitto.log|" \
      "$repo/deploy/mosquitto/compose.conf" >"$dir/mosquitto/mosquitto.conf"
  printf 'pid_file %s\n' "$dir/mosquitto.pid" >>"$dir/mosquitto/mosquitto.conf"
  # Started as root, mosquitto would switch to the user mosquitto, who cannot write
  # $dir; as anyone else this line changes nothing.
  [ "$(id -u)" -ne 0 ] || printf 'user root\n' >>"$dir/mosquitto/mosquitto.conf"
  "$mosquitto" -c "$dir/mosquitto/mosquitto.conf" -d
  wait_until 10 "mosquitto" bash -c "exec 3<>/dev/tcp/127.0.0.1/$mqtt_port"

  # The store: every write to the append-only file before it is acknowledged.
  # its replica, and three sentinels that fail it over (Redis Sentinel, docs/deploy.md).
  "$redis_server" --bind 127.0.0.1 --port "$redis_port" --dir "$dir/redis" \
    --appendonly yes --appendfsync always --requirepass "$redis_pw" --masterauth "$redis_pw" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  wait_until 10 "redis" bash -c "exec 3<>/dev/tcp/127.0.0.1/$redis_port"
  mkdir -p "$dir/redis-replica"
  "$redis_server" --bind 127.0.0.1 --port "$replica_port" --dir "$dir/redis-replica" \
    --appendonly yes --appendfsync always --requirepass "$redis_pw" --masterauth "$redis_pw" \
    --replicaof 127.0.0.1 "$redis_port" \
    --daemonize yes --pidfile "$dir/redis-replica.pid" --logfile "$dir/redis-replica.log"
  wait_until 10 "the redis replica" bash -c "exec 3<>/dev/tcp/127.0.0.1/$replica_port"
  local i=0 sentinel_hosts=()
  for port in "${sentinel_ports[@]}"; do
    i=$((i + 1))
    printf '%s\n' "port $port" "bind 127.0.0.1" "dir $dir" \
      "sentinel monitor mymaster 127.0.0.1 $redis_port 2" \
      "sentinel auth-pass mymaster $redis_pw" \
      "sentinel down-after-milliseconds mymaster 3000" \
      "sentinel failover-timeout mymaster 10000" >"$dir/sentinel-$i.conf"
    "$redis_server" "$dir/sentinel-$i.conf" --sentinel --daemonize yes \
      --pidfile "$dir/sentinel-$i.pid" --logfile "$dir/sentinel-$i.log"
    wait_until 10 "sentinel $i" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
    sentinel_hosts+=("127.0.0.1:$port")
  done
  local sentinels
  sentinels="$(IFS=,; echo "${sentinel_hosts[*]}")"

  # Two daemons on one deployment (the repository's files), each with its own port
  # and client id, sharing the broker and the store.
  for i in 0 1; do
    local name="${names[$i]}" port="${http_ports[$i]}" node="$dir/daemon-${names[$i]}"
    mkdir -p "$node"
    cp -r "$repo/playbooks" "$repo/templates" "$repo/channels" "$node/"
    cat >"$node/broadcaster.yaml" <<EOF
mqtt:
  url: \${MQTT_URL}
  username: broadcaster
  password: \${BROADCASTER_MQTT_PASSWORD}
  topic_prefix: broadcaster
  client_id: broadcaster-local-$name
store:
  url: redis+sentinel://:\${REDIS_PASSWORD}@$sentinels/mymaster/0
  replicas_to_wait: 1
http:
  listen: 127.0.0.1:$port
  public_url: http://127.0.0.1:$port
  api_token: \${API_TOKEN}
security:
  trigger_secret: \${TRIGGER_SECRET}
console:
  session_secret: \${CONSOLE_SESSION_SECRET}
duty_officers:
  - name: Duty officer (log)
    notify: [officer_log]
EOF
    (
      set -a; . "$dir/credentials.env"; set +a
      cd "$repo"
      nohup "$python" -m broadcaster run --json-logs --config "$node/broadcaster.yaml" \
        >"$dir/daemon-$name.log" 2>&1 &
      echo $! >"$dir/daemon-$name.pid"
    )
  done
  for port in "${http_ports[@]}"; do
    wait_until 60 "the daemon on port $port" curl -fsS "http://127.0.0.1:$port/healthz"
  done
  say "up in $dir"
  say "  broker mqtt://127.0.0.1:$mqtt_port (accounts firebrigade, broadcaster; no anonymous)"
  say "  store  redis://127.0.0.1:$redis_port (append-only file), its replica on $replica_port,"
  say "         three sentinels on ${sentinel_ports[*]} (the daemons' store.url: redis+sentinel://)"
  say "  daemons http://127.0.0.1:${http_ports[0]} and http://127.0.0.1:${http_ports[1]}"
  say "  credentials in $dir/credentials.env"
}

status() {
  local running=0 file name
  for name in mosquitto redis redis-replica sentinel-1 sentinel-2 sentinel-3 daemon-a daemon-b; do
    file="$dir/$name.pid"
    if pid_alive "$file"; then
      say "$name: running (pid $(cat "$file"))"
      running=$((running + 1))
    else
      say "$name: not running"
    fi
  done
  for port in "${http_ports[@]}"; do
    say "http://127.0.0.1:$port/healthz: $(curl -sS "http://127.0.0.1:$port/healthz" 2>/dev/null || echo unreachable)"
  done
  [ "$running" -gt 0 ]
}

stop_pid() {  # stop_pid FILE: SIGTERM, wait for the end, then SIGKILL
  local file="$1" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local until=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$until" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  # The daemons first (they drain and say goodbye on the broker), then broker and store.
  local name
  for name in daemon-a daemon-b mosquitto sentinel-1 sentinel-2 sentinel-3 redis-replica redis; do
    stop_pid "$dir/$name.pid"
  done
  say "down: nothing of $dir is running"
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  down) down ;;
  *) fail "usage: deploy/local-stack.sh up|down|status" ;;
esac
