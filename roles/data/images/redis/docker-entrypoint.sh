#!/bin/sh
# Entrypoint of the dockerlab offline redis image (redis from Debian).
# Same behaviour as the official redis:7.4-alpine docker-entrypoint.sh, plus
# one shim for a build difference (see "protected mode" below).
set -e

# first arg is `-f` or `--some-option`
# or first arg is `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# allow the container to be started with `--user`
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec gosu redis "$0" "$@"
fi

# set an appropriate umask (if one isn't set already)
# - https://github.com/docker-library/redis/issues/305
# - https://github.com/redis/redis/blob/bb875603fb7ff3f9d19aad906bd45d7db98d9a39/utils/systemd-redis_server.service#L37
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

# Protected mode: the official image compiles redis with protected-mode
# defaulting to "no" (its Dockerfile patches src/config.c), so with no config
# it answers on every interface. Debian's binary defaults to "yes". Give the
# official default unless the command line or the config file (first
# argument, when it is a file) sets protected-mode itself. Appended options
# come after the file's contents, so this only fills the gap.
if [ "$1" = 'redis-server' ]; then
	_set=
	for _arg; do
		case "$_arg" in
			--protected-mode|--protected-mode=*) _set=1 ;;
		esac
	done
	if [ -z "$_set" ] && [ $# -ge 2 ] && [ "${2#-}" = "$2" ] && [ -f "$2" ] \
		&& grep -Eqi '^[[:space:]]*protected-mode[[:space:]]' "$2"; then
		_set=1
	fi
	if [ -z "$_set" ]; then
		set -- "$@" --protected-mode no
	fi
	unset _set _arg
fi

exec "$@"
