#!/bin/bash
# Default user from the environment, a stable Erlang cookie (CLI tools and health checks need it).
set -euo pipefail
conf=/etc/rabbitmq/rabbitmq.conf
if [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && ! grep -q '^default_user' "$conf"; then
  echo "default_user = ${RABBITMQ_DEFAULT_USER}" >> "$conf"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-}" >> "$conf"
fi
cookie=/var/lib/rabbitmq/.erlang.cookie
if [ ! -s "$cookie" ]; then
  printf '%s' "${RABBITMQ_ERLANG_COOKIE:-loadstack-local-cookie}" > "$cookie"
  chmod 400 "$cookie"
fi
exec "$@"
