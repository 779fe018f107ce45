#!/usr/bin/env bash
# Backup and restore on a lab with a known number of rows (BENCH_ORDERS, 100000 by default):
# the time and size of playbooks/backup.yml (with and without its verification) and of
# playbooks/restore.yml, beside a plain mysqldump of the same databases from a one-off
# container of mysql-db's image, measured in the same run. Needs the lab of INVENTORY (bench/
# inventory by default) deployed. Prints one line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
inv=${INVENTORY:-bench/inventory}
orders=${BENCH_ORDERS:-100000}
stack=$(python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['stack_name'])" "$inv/group_vars/all/main.yml")
# the root password as the Docker host keeps it for mysql-db (owned by its uid 999, never in an argv or env)
secret=/opt/dockerlab/$stack/mysql-db/secrets/root_password
root=$(mktemp -d /var/tmp/dockerlab-bench-backups.XXXXXX)
trap 'rm -rf "$root"' EXIT
log=${BENCH_LOG:-/dev/null}

mysql_oneoff() {  # mysql_oneoff SCRIPT: run a shell script in a one-off client container as root
  docker run --rm -i --network ecommerce-database --user 999:999 -v "$secret:/pw:ro" \
    --entrypoint sh "$(docker inspect -f '{{.Image}}' mysql-db)" -c 'export MYSQL_PWD="$(cat /pw)"; '"$1"
}
now() { date +%s.%N; }
took() { python3 -c "print(f'{$(now) - $1:.1f}')"; }

# 10^5 rows from five cross joins of ten digits (no recursive CTE: MySQL caps its depth at 1000)
digits="(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5
  UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
mysql_oneoff "mysql -h mysql-db -u root orders -e \"
  INSERT INTO orders (user_id, total, status, created_at, updated_at)
  SELECT 1 + (a.d + 10*b.d) % 50, (a.d*10000 + b.d*1000 + c.d*100 + e.d*10 + f.d) / 100, 'pending', NOW(3), NOW(3)
  FROM $digits a, $digits b, $digits c, $digits e, $digits f
  LIMIT $orders\"" >>"$log" 2>&1
rows=$(mysql_oneoff "mysql -h mysql-db -u root -N -B -e 'SELECT COUNT(*) FROM orders.orders'")
echo "  rows in orders.orders          $rows"

start=$(now)
mysql_oneoff "mysqldump -h mysql-db -u root --single-transaction --routines --events --triggers --databases users orders payments | gzip -1 | wc -c" > "$root/plain.size"
plain=$(took "$start")
echo "  plain mysqldump | gzip         $plain s  $(( $(cat "$root/plain.size") / 1024 )) KiB"

start=$(now)
ansible-playbook -i "$inv" playbooks/backup.yml -e backup_root="$root" -e backup_verify=false >>"$log" 2>&1
backup=$(took "$start")
dir=$(find "$root" -mindepth 1 -maxdepth 1 -type d -name "$stack-*" | sort | tail -n 1)
dump=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(next(p['bytes'] for p in m['parts'] if p['name']=='mysql'), sum(p['bytes'] for p in m['parts']), next(p.get('write_lock_ms') for p in m['parts'] if p['name']=='mysql'))" "$dir/manifest.json")
read -r dump_bytes total_bytes lock_ms <<<"$dump"
echo "  backup.yml (no verification)   $backup s  dump $(( dump_bytes / 1024 )) KiB, all parts $(( total_bytes / 1024 )) KiB, writes held ${lock_ms} ms"
rm -rf "$dir"

start=$(now)
ansible-playbook -i "$inv" playbooks/backup.yml -e backup_root="$root" >>"$log" 2>&1
verified=$(took "$start")
dir=$(find "$root" -mindepth 1 -maxdepth 1 -type d -name "$stack-*" | sort | tail -n 1)
echo "  backup.yml (verified)          $verified s"

start=$(now)
ansible-playbook -i "$inv" playbooks/restore.yml -e backup="$dir" >>"$log" 2>&1
restore=$(took "$start")
echo "  restore.yml (and validation)   $restore s"
echo "  backup / plain mysqldump       $(python3 -c "print(round($backup / $plain, 2))") (the playbook's fixed cost: Redis, volumes, fetch, manifest)"
