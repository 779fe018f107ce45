#!/bin/sh
# Entrypoint of the dockerlab offline log collector (rsyslog from Debian).
# Checks what rsyslog itself would only report as a warning while it keeps
# running without doing its job: a configuration it cannot parse and a log
# directory it cannot write. Then runs the command (rsyslogd in the foreground).
set -e

# only options given: run them with rsyslogd
if [ "${1#-}" != "$1" ]; then
	set -- rsyslogd -n -iNONE "$@"
fi

if [ "$1" = 'rsyslogd' ]; then
	conf=/etc/rsyslog.conf
	previous=''
	for arg in "$@"; do
		if [ "$previous" = '-f' ]; then conf="$arg"; fi
		previous="$arg"
	done
	if ! rsyslogd -N1 -f "$conf" >/tmp/rsyslog-check.log 2>&1; then
		cat /tmp/rsyslog-check.log >&2
		echo "log-collector: rsyslog rejects $conf (see above); not starting." >&2
		exit 1
	fi
	dir="${COLLECTOR_LOG_DIR:-/var/log/ecommerce}"
	if ! touch "$dir/.write-test" 2>/dev/null; then
		echo "log-collector: cannot write to $dir as $(id -un) (uid $(id -u)); it is owned by" \
			"uid $(stat -c %u "$dir" 2>/dev/null || echo '?'). Give the volume to uid $(id -u)" \
			"(e.g. docker run --rm -u 0 -v <volume>:$dir <this image> chown $(id -u):$(id -g) $dir) or use an empty volume." >&2
		exit 1
	fi
	rm -f "$dir/.write-test"
fi

exec "$@"
