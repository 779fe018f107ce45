#!/bin/sh
# vim:sw=4:ts=4:et
# As in the official image: add `listen [::]:80;` to the stock default.conf
# when the container has IPv6 and the file is still the one shipped.

set -e

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

ME=$(basename "$0")
DEFAULT_CONF_FILE="/etc/nginx/conf.d/default.conf"

if [ ! -f "/proc/net/if_inet6" ]; then
    entrypoint_log "$ME: info: ipv6 not available"
    exit 0
fi

if [ ! -f "$DEFAULT_CONF_FILE" ]; then
    entrypoint_log "$ME: info: $DEFAULT_CONF_FILE is not a file or does not exist"
    exit 0
fi

touch "$DEFAULT_CONF_FILE" 2>/dev/null || { entrypoint_log "$ME: info: can not modify $DEFAULT_CONF_FILE (read-only file system?)"; exit 0; }

if [ "$(sha256sum "$DEFAULT_CONF_FILE" | cut -d' ' -f1)" != "$(cat /etc/nginx/.default.conf.sha256 2>/dev/null)" ]; then
    entrypoint_log "$ME: info: $DEFAULT_CONF_FILE differs from the packaged version"
    exit 0
fi

sed -i -E 's,listen       80;,listen       80;\n    listen  [::]:80;,' "$DEFAULT_CONF_FILE"
entrypoint_log "$ME: info: Enabled listen on IPv6 in $DEFAULT_CONF_FILE"

exit 0
