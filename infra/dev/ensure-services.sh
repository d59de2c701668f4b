#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ answer on 127.0.0.1 for the test suite.
#
# Already running: nothing to do.  Installed but stopped: start it.  Missing on a
# Debian machine where we are root: install it with apt, then start it.  Anything
# else: fail and say what to do.  Nothing here touches a non-local host.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 600); do port_open "$port" && return 0; sleep 0.5; done  # readiness: up to 5 min
  log "$name did not come up on 127.0.0.1:$port"; return 1
}
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_install() {
  can_apt || { log "cannot install $* (need root and apt-get); install them yourself, then rerun"; return 1; }
  log "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

ensure_postgres() {
  if ! port_open 5432; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    local version
    version=$(ls /etc/postgresql | sort -V | tail -1)
    log "starting PostgreSQL $version"
    # Trust auth for loopback only: the test database is throw-away and local.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_port 5432 PostgreSQL
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; then
    log "creating database 'test'"
    if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
      su postgres -c "createdb test" 2>/dev/null || true
    else
      createdb -h 127.0.0.1 -U postgres test 2>/dev/null || true
    fi
    psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null \
      || { log "PostgreSQL runs but postgres@127.0.0.1/test is not reachable with trust auth"; return 1; }
  fi
}

ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_port 6379 Redis
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  log "starting RabbitMQ (takes a few seconds)"
  rabbitmq-server -detached >/dev/null 2>&1
  wait_port 5672 RabbitMQ
  rabbitmqctl await_startup >/dev/null 2>&1 || true
}

ensure_postgres
ensure_redis
ensure_rabbitmq
log "PostgreSQL, Redis and RabbitMQ are up on 127.0.0.1"
