#!/usr/bin/env bash
# The course's way of checking the lab: one curl or docker command after another. The
# benchmark times it beside the stack_health module running the same checks at once.
# Exit status: the number of failed checks.
set -u
base="${1:-http://127.0.0.1:8080}"
failed=0
check() {  # check LABEL command...
  if ! "$@" >/dev/null 2>&1; then echo "FAILED: $1"; failed=$((failed + 1)); fi
}
# shellcheck disable=SC2317  # called through check
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = healthy ]; }
for c in mysql-db redis-cache user-service order-service payment-service api-gateway web-server-1 web-server-2 load-balancer; do
  check healthy "$c"
done
check docker exec mysql-db mysqladmin ping -h 127.0.0.1 --silent
check docker exec redis-cache sh -c 'redis-cli ping | grep -qx PONG'  # the course's command: PING needs no login
for svc in user-service:3001 order-service:3002 payment-service:3003 api-gateway:3000; do
  check docker exec "${svc%%:*}" python3 -m ecommerce_app.healthcheck
done
for c in web-server-1 web-server-2; do check docker exec "$c" curl -fsS http://127.0.0.1/health; done
check docker exec load-balancer curl -fsS http://127.0.0.1/nginx_status
check sh -c "curl -fsS '$base/' | grep -q E-commerce"
check sh -c "curl -fsS '$base/api/system/status' | grep -q '\"gateway\": *\"healthy\"'"
for svc in users orders payments; do check sh -c "curl -fsS '$base/api/$svc/health' | grep -q healthy"; done
check docker exec api-gateway getent hosts user-service
check docker exec user-service getent hosts mysql-db
exit "$failed"
