#!/usr/bin/env bash
# make bench: time the foundation's operations side by side in one run and print them
# with their ratios. It uses its own stack (bench/inventory), tears it down first, and
# removes the offline images to time a cold build, so run it when nothing else builds.
set -euo pipefail
cd "$(dirname "$0")/.."
inv=bench/inventory
mkdir -p bench/results
log=bench/results/bench-$(date +%Y%m%d-%H%M%S).log
declare -A secs

calc() { python3 -c "print(round($1, 3))"; }

timed() {  # timed KEY command...
  local key=$1; shift
  local start end
  start=$(date +%s.%N)
  if ! "$@" >>"$log" 2>&1; then
    echo "bench: '$*' failed; see $log" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  secs[$key]=$(calc "$end - $start")
  printf '  %-28s %8.1f s\n' "$key" "${secs[$key]}"
}

playbook() { ansible-playbook -i "$inv" "$@"; }

echo "bench: log in $log"
echo "bench: clearing the bench stack and the offline images"
playbook playbooks/teardown.yml -e purge=true >>"$log" 2>&1
docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^dockerlab/ecommerce-' | xargs -r docker rmi -f >>"$log" 2>&1 || true
docker builder prune -af >>"$log" 2>&1 || true

timed image_build_cold   playbook site.yml --tags images
timed image_build_cached playbook site.yml --tags images
timed converge_cold      playbook site.yml
timed converge_noop      playbook site.yml

# Health validation: the stack_health module's own time (profile_tasks) beside the same
# checks run one after another by the course's kind of shell script.
timed course_checks bench/course_checks.sh
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks playbook playbooks/validate.yml >"$log.validate" 2>&1
secs[stack_health]=$(sed -n 's/^\(dockerlab.ecommerce.stack : \)\{0,1\}Check the whole stack -* \([0-9.]*\)s$/\2/p' "$log.validate" | head -n 1)
cat "$log.validate" >>"$log" && rm -f "$log.validate"
printf '  %-28s %8.1f s\n' stack_health_module "${secs[stack_health]}"

echo
echo "bench: request path (wrk from a client container on the lab's networks)"
bench/request_path.sh | tee -a "$log"

echo
echo "bench: faults under load, the default lab beside a one-replica deploy (the control)"
python3 bench/faults.py "$inv" | tee -a "$log"

echo
echo "bench: backup and restore of a lab with ${BENCH_ORDERS:-100000} orders"
INVENTORY=$inv BENCH_LOG=$log bench/backup.sh | tee -a "$log"

playbook playbooks/teardown.yml -e purge=true >>"$log" 2>&1

ratio() { calc "$1 / $2"; }
verdict() { if python3 -c "import sys; sys.exit(0 if $1 < $2 else 1)"; then echo "within target ($1 s)"; else echo "OVER TARGET ($1 s)"; fi; }
echo
printf '%-46s %s\n' "cached image build / cold image build" "$(ratio "${secs[image_build_cached]}" "${secs[image_build_cold]}")"
printf '%-46s %s\n' "no-op converge / cold converge" "$(ratio "${secs[converge_noop]}" "${secs[converge_cold]}")"
printf '%-46s %s\n' "no-op converge (target < 20 s)" "$(verdict "${secs[converge_noop]}" 20)"
printf '%-46s %s\n' "cached image build (target < 10 s)" "$(verdict "${secs[image_build_cached]}" 10)"
printf '%-46s %s\n' "stack_health module / course's shell checks" "$(ratio "${secs[stack_health]}" "${secs[course_checks]}")"
printf '%-46s %s\n' "stack_health module time (target <= 2 s)" "$(verdict "${secs[stack_health]}" 2.001)"
