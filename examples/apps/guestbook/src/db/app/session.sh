#!/bin/sh
# One client session of guestbook-db (stdin/stdout are the connection).
IFS= read -r line || exit 0
line=$(printf '%s' "$line" | tr -d '\r')
set -f
# shellcheck disable=SC2086
set -- $line
if [ "${1:-}" != AUTH ] || [ "${2:-}" != "$DB_PASSWORD" ]; then
	echo "ERR auth"
	exit 0
fi
case "${3:-}" in
PING)
	echo "PONG"
	;;
COUNT)
	wc -l </data/entries.txt
	;;
LIST)
	tail -n 50 /data/entries.txt
	echo "."
	;;
ADD)
	text=${line#* * ADD }
	text=$(printf '%s' "$text" | tr -d '\000-\037' | cut -c1-500)
	if [ -z "$text" ]; then
		echo "ERR empty"
		exit 0
	fi
	printf '%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$text" >>/data/entries.txt
	echo "OK"
	;;
*)
	echo "ERR unknown command"
	;;
esac
