#!/bin/sh
# Called by rsyslog (omfile rotation.sizeLimitCommand) when a log file reaches its
# size limit. rsyslog passes everything after the program name as one argument:
# "<directory> <limit in bytes> <files kept>". Every *.log file in the directory at
# or over the limit becomes <name>.log.1 (older ones shift to .2 ... and the last
# is dropped); rsyslog then opens a new <name>.log. A file whose writer is another
# cached handle gets its own call when that handle crosses the limit.
set -eu

# shellcheck disable=SC2086 # the one argument is three words on purpose
set -- ${1:-}
dir="${1:-/var/log/ecommerce}"
limit="${2:-52428800}"
keep="${3:-2}"

for file in "$dir"/*.log; do
	[ -f "$file" ] || continue
	size="$(stat -c %s "$file" 2>/dev/null || echo 0)"
	[ "$size" -ge "$limit" ] || continue
	n="$keep"
	rm -f "$file.$n"
	while [ "$n" -gt 1 ]; do
		previous=$((n - 1))
		if [ -f "$file.$previous" ]; then mv -f "$file.$previous" "$file.$n"; fi
		n="$previous"
	done
	if [ "$keep" -ge 1 ]; then mv -f "$file" "$file.1"; else : > "$file"; fi
done
