#!/bin/sh
# Healthcheck of the log collector: sends a syslog message with a fresh token to
# the collector's own UDP port, the way Docker's syslog driver does (RFC 5424),
# and waits for rsyslog to write it out. The probe's tag (_healthcheck) is no
# valid container name, so the line goes to a file of its own outside the logs
# volume, which is emptied now and then.
set -eu

port="${COLLECTOR_PORT:-5514}"
file="${COLLECTOR_HEALTH_FILE:-/run/rsyslog/healthcheck.log}"
token="healthcheck-$(cat /proc/sys/kernel/random/uuid)"

if [ -f "$file" ] && [ "$(stat -c %s "$file")" -gt 65536 ]; then
	: > "$file"
fi

logger --rfc5424=notq --udp --server 127.0.0.1 --port "$port" --tag _healthcheck -- "$token"

tries=0
while [ "$tries" -lt 30 ]; do
	if grep -qF -- "$token" "$file" 2>/dev/null; then
		exit 0
	fi
	tries=$((tries + 1))
	sleep 0.1
done
echo "no line with $token in $file 3 s after sending it to 127.0.0.1:$port/udp" >&2
exit 1
