#!/usr/bin/env bash
# bench/request_path.sh [stack_prefix]: measure the request path of a running stack side
# by side in one run, from one load-generator container, and print the figures with their
# ratios and whether the issue's targets are met.
#
#   (a) cached GET of one user, straight to the user service   http://user-service:3001/<id>
#   (b) the same GET through the API gateway                    http://api-gateway:3000/users/<id>
#   (c) the same GET through the load balancer and the gateway  http://load-balancer:80/api/users/<id>
#   (d) POST of an order through the load balancer              http://load-balancer:80/api/orders/
#
# The client is one container of dockerlab/ecommerce-loadgen (bench/loadgen, Debian's wrk),
# attached to <stack_prefix>-frontend and <stack_prefix>-backend, so every target sees the
# same client and the load never leaves the lab's Docker networks. Each measurement is a
# short warm-up and a fixed-duration wrk run; the container is removed at the end.
#
# Exits non-zero only when the benchmark could not run (stack not up, image build failed,
# wrk failed); a target that is not met is reported, not failed. The raw wrk outputs and
# the table go to bench/results/request-path-<timestamp>.txt.
#
# Settings (environment): BENCH_DURATION [10s], BENCH_WARMUP [3s], BENCH_CONNECTIONS [50],
# BENCH_THREADS [2], BENCH_TIMEOUT [5s] (wrk's per-request timeout).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${1:-ecommerce}
duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-3s}
connections=${BENCH_CONNECTIONS:-50}
threads=${BENCH_THREADS:-2}
timeout=${BENCH_TIMEOUT:-5s}
frontend_net=$prefix-frontend
backend_net=$prefix-backend
# The stack's containers (fixed names, on the stack's networks).
required=(load-balancer api-gateway user-service order-service payment-service mysql-db redis-cache)

mkdir -p bench/results
out=bench/results/request-path-$(date +%Y%m%d-%H%M%S).txt
lg=""

die() { echo "request_path: $*" >&2; exit 1; }
log() { printf '%s\n' "$*" >>"$out"; }

cleanup() {
  if [ -n "$lg" ]; then docker rm -f "$lg" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. Is the stack up? ---------------------------------------------------------------
command -v docker >/dev/null || die "docker is not installed on this machine"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is it running?)"
for net in "$frontend_net" "$backend_net"; do
  docker network inspect "$net" >/dev/null 2>&1 \
    || die "the stack is not up: Docker network '$net' does not exist (deploy it first: make up)"
done
all_containers=$(docker ps -a --format '{{.Names}}')
for svc in "${required[@]}"; do  # a service with replicas runs as <name>-1..N
  found=$(grep -E "^$svc(-[0-9]+)?\$" <<<"$all_containers") \
    || die "the stack is not up: container '$svc' does not exist (deploy it first: make up)"
  for c in $found; do
    state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c")
    case $state in
      "running healthy" | "running none") ;;
      *) die "the stack is not up: container '$c' is '$state', not running and healthy" ;;
    esac
  done
done

# --- 2. The load-generator image, built once per version of its Dockerfile ---------------
image=dockerlab/ecommerce-loadgen:$(sha256sum bench/loadgen/Dockerfile | cut -c1-12)
if ! docker image inspect "$image" >/dev/null 2>&1; then
  base=$(docker image ls dockerlab/ecommerce-base --format '{{.CreatedAt}}|{{.Repository}}:{{.Tag}}' \
    | grep -v ':<none>$' | sort -r | head -n 1 | cut -d'|' -f2)
  [ -n "$base" ] || die "no dockerlab/ecommerce-base:* image to build $image from (make images builds it)"
  echo "request_path: building $image from $base"
  docker build -q --build-arg BASE_IMAGE="$base" -t "$image" bench/loadgen >>"$out" 2>&1 \
    || die "could not build $image; see $out"
fi

# --- 3. One client container on both networks ---------------------------------------------
# `sleep` bounds its life even if this script is killed before its trap runs.
lg=$prefix-bench-loadgen-$$
docker run -d --rm --name "$lg" --network "$frontend_net" --label dockerlab.bench=request-path \
  "$image" sleep 900 >/dev/null || { lg=""; die "could not start the load-generator container"; }
docker network connect "$backend_net" "$lg" || die "could not connect $lg to $backend_net"

lgx() { docker exec -i "$lg" "$@"; }
put() { lgx sh -c "cat > /home/loadgen/$1"; }  # put NAME < content

# wrk's done() hook: p50/p95/p99 (ms), req/s, non-2xx/3xx and socket errors on one line.
put report.lua <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout))
end
EOF

# --- 4. A user with a cached id, and a warm cache ----------------------------------------
email="bench-$(date +%s)-$$@example.test"
created=$(lgx curl -sS --max-time 10 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d "{\"name\": \"request-path bench\", \"email\": \"$email\"}" http://api-gateway:3000/users/) \
  || die "could not reach the gateway from the load generator"
code=$(tail -n 1 <<<"$created")
id=$(head -n 1 <<<"$created" | sed -n 's/.*"id": *\([0-9][0-9]*\).*/\1/p')
if [ "$code" != 201 ] || [ -z "$id" ]; then
  die "creating a user through the gateway gave HTTP $code: $(head -n 1 <<<"$created")"
fi

# The order body (d) and its wrk script.
put order.lua <<EOF
wrk.method = "POST"
wrk.body = '{"user_id": $id, "items": [{"name": "bench item", "quantity": 1, "unit_price": 9.5}]}'
wrk.headers["Content-Type"] = "application/json"
EOF
lgx sh -c 'cat report.lua >> order.lua'

names=(direct gateway lb order)
declare -A url label script expect
url[direct]=http://user-service:3001/$id;         label[direct]="GET user, direct (user-service)"
url[gateway]=http://api-gateway:3000/users/$id;   label[gateway]="GET user, via gateway"
url[lb]=http://load-balancer:80/api/users/$id;       label[lb]="GET user, via LB + gateway"
url[order]=http://load-balancer:80/api/orders/;      label[order]="POST order, via LB + gateway"
for n in direct gateway lb; do script[$n]=report.lua; expect[$n]=200; done
script[order]=order.lua; expect[order]=201

{
  echo "request-path benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "stack prefix $prefix, client $image ($lg on $frontend_net + $backend_net)"
  echo "user id $id; wrk -t$threads -c$connections -d$duration --timeout $timeout --latency, warm-up $warmup"
  echo "host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out"

# Each GET target answers from the cache before it is measured (first read fills Redis).
check() {  # check NAME: one request; must give the expected status
  local n=$1 res
  if [ "$n" = order ]; then
    res=$(lgx curl -sS --max-time 10 -o /dev/null -D - -X POST -H 'Content-Type: application/json' \
      -d "{\"user_id\": $id, \"items\": [{\"name\": \"bench item\", \"quantity\": 1, \"unit_price\": 9.5}]}" \
      "${url[$n]}") || die "${url[$n]} is not reachable from the load generator"
  else
    res=$(lgx curl -sS --max-time 10 -o /dev/null -D - "${url[$n]}") \
      || die "${url[$n]} is not reachable from the load generator"
  fi
  local status cache
  status=$(head -n 1 <<<"$res" | awk '{print $2}')
  cache=$(tr -d '\r' <<<"$res" | awk -F': ' 'tolower($1) == "x-cache" {print $2}')
  log "check ${url[$n]}: HTTP $status${cache:+, X-Cache $cache}"
  [ "$status" = "${expect[$n]}" ] || die "${url[$n]} gave HTTP $status, expected ${expect[$n]}"
}
for n in direct direct gateway lb order; do check "$n"; done

# --- 5. Measure, one target after the other, same client, same settings ------------------
# CPU time each container (and the whole host) used during each measurement, from the
# cgroup accounting files (cgroup v1 or v2, cgroupfs or systemd driver), to show what
# limits throughput. Left out when the files cannot be read.
cpu_names=("$lg" load-balancer api-gateway user-service order-service payment-service redis-cache mysql-db)
cpu_heads=(client LB gateway user order payment redis mysql)
declare -A cgfile
for c in "${cpu_names[@]}"; do
  cid=$(docker inspect -f '{{.Id}}' "$c" 2>/dev/null) || continue
  for f in /sys/fs/cgroup/cpuacct/docker/"$cid"/cpuacct.usage /sys/fs/cgroup/cpu,cpuacct/docker/"$cid"/cpuacct.usage \
           /sys/fs/cgroup/cpuacct/system.slice/docker-"$cid".scope/cpuacct.usage \
           /sys/fs/cgroup/system.slice/docker-"$cid".scope/cpu.stat /sys/fs/cgroup/docker/"$cid"/cpu.stat; do
    if [ -r "$f" ]; then cgfile[$c]=$f; break; fi
  done
done
cpu_ns() {  # cpu_ns CONTAINER|host: CPU time used so far, in ns
  if [ "$1" = host ]; then  # busy = all - idle - iowait, in USER_HZ ticks
    awk -v hz="$(getconf CLK_TCK)" '/^cpu /{ t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%.0f", (t - $5 - $6) * 1e9 / hz }' /proc/stat
  elif [ -z "${cgfile[$1]:-}" ]; then echo 0
  elif [[ ${cgfile[$1]} == *cpu.stat ]]; then awk '$1 == "usage_usec" { printf "%.0f", $2 * 1000 }' "${cgfile[$1]}"
  else cat "${cgfile[$1]}"
  fi
}
declare -A cpu_before cpu_pct
declare -A rps p50 p95 p99 errs non2xx sockerr
echo "request_path: measuring 4 targets, $duration each after a $warmup warm-up (c=$connections, t=$threads); results in $out"
for n in "${names[@]}"; do
  lgx wrk -t"$threads" -c"$connections" -d"$warmup" --timeout "$timeout" -s "${script[$n]}" "${url[$n]}" >/dev/null \
    || die "wrk failed warming up ${url[$n]}"
  for c in "${cpu_names[@]}" host; do cpu_before[$c]=$(cpu_ns "$c"); done
  t0=$(date +%s%N)
  raw=$(lgx wrk -t"$threads" -c"$connections" -d"$duration" --timeout "$timeout" --latency -s "${script[$n]}" "${url[$n]}") \
    || die "wrk failed against ${url[$n]}"
  t1=$(date +%s%N)
  for c in "${cpu_names[@]}" host; do  # % of one core over the measurement
    cpu_pct[$n,$c]=$(( ( $(cpu_ns "$c") - cpu_before[$c] ) * 100 / (t1 - t0) ))
  done
  { echo; echo "=== ${label[$n]}: ${url[$n]}"; echo "$raw"; } >>"$out"
  line=$(grep '^BENCH ' <<<"$raw") || die "no figures in wrk's output for ${url[$n]}; see $out"
  field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
  rps[$n]=$(field rps); p50[$n]=$(field p50_ms); p95[$n]=$(field p95_ms); p99[$n]=$(field p99_ms)
  non2xx[$n]=$(field non2xx)
  sockerr[$n]=$(( $(field connect) + $(field read) + $(field write) + $(field timeout) ))
  errs[$n]=$(( non2xx[$n] + sockerr[$n] ))
done

# --- 6. Table, ratios, targets -----------------------------------------------------------
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }  # calc EXPR [DECIMALS]
is() { awk "BEGIN { exit !($1) }"; }
met() { if is "$1"; then echo met; else echo "NOT met"; fi; }
total_errs=0
for n in "${names[@]}"; do total_errs=$(( total_errs + errs[$n] )); done

report=$(
  echo
  printf '%-32s %9s %9s %9s %9s %14s\n' target "req/s" "p50 ms" "p95 ms" "p99 ms" "errors"
  for n in "${names[@]}"; do
    printf '%-32s %9.0f %9.2f %9.2f %9.2f %14s\n' "${label[$n]}" "${rps[$n]}" "${p50[$n]}" "${p95[$n]}" \
      "${p99[$n]}" "${errs[$n]} (${non2xx[$n]}+${sockerr[$n]})"
  done
  echo "(errors = non-2xx/3xx + socket errors; c=$connections, t=$threads, $duration each, one client container)"
  if [ "${#cgfile[@]}" -gt 0 ]; then
    echo
    echo "CPU during each measurement, % of one core ($(nproc) cores = $(( $(nproc) * 100 ))%; other = host minus these containers):"
    printf '%-32s' target; printf ' %7s' "${cpu_heads[@]}" host other; echo
    for n in "${names[@]}"; do
      sum=0
      printf '%-32s' "${label[$n]}"
      for c in "${cpu_names[@]}"; do
        if [ -n "${cgfile[$c]:-}" ]; then printf ' %7s' "${cpu_pct[$n,$c]}"; sum=$(( sum + cpu_pct[$n,$c] )); else printf ' %7s' -; fi
      done
      other=$(( cpu_pct[$n,host] - sum )); [ "$other" -ge 0 ] || other=0
      printf ' %7s %7s\n' "${cpu_pct[$n,host]}" "$other"
    done
  fi
  echo
  printf '%-52s %6sx\n' "LB p50 / direct p50 (both proxy hops; <= 2x)" "$(calc "${p50[lb]} / ${p50[direct]}")"
  printf '%-52s %6sx\n' "gateway p50 / direct p50 (gateway hop)" "$(calc "${p50[gateway]} / ${p50[direct]}")"
  printf '%-52s %6sx\n' "LB p50 / gateway p50 (nginx hop)" "$(calc "${p50[lb]} / ${p50[gateway]}")"
  printf '%-52s %6sx\n' "gateway req/s / direct req/s" "$(calc "${rps[gateway]} / ${rps[direct]}")"
  printf '%-52s %6sx\n' "LB req/s / gateway req/s" "$(calc "${rps[lb]} / ${rps[gateway]}")"
  echo
  printf '%-52s %s\n' "cached GET via LB >= 1000 req/s ($(calc "${rps[lb]}" 0))" "$(met "${rps[lb]} >= 1000")"
  printf '%-52s %s\n' "cached GET via LB p99 < 100 ms ($(calc "${p99[lb]}") ms)" "$(met "${p99[lb]} < 100")"
  printf '%-52s %s\n' "no errors on any target ($total_errs)" "$(met "$total_errs == 0")"
  printf '%-52s %s\n' "proxy hops: LB p50 <= 2x direct p50" "$(met "${p50[lb]} <= 2 * ${p50[direct]}")"
  printf '%-52s %s\n' "(informational) order POST via LB p99 < 100 ms" "$(met "${p99[order]} < 100")"
  echo
  echo "Figures from a shared $(nproc)-core machine: client, nginx, gateway, service and Redis share its CPUs."
)
echo "$report"
{ echo; echo "=== summary"; echo "$report"; } >>"$out"
echo "request_path: raw wrk outputs and this table in $out"
