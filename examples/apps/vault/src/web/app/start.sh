#!/bin/sh
# Admin Vault: an app with a displayed credential. Its admin pages need the
# password archy generated and shows the owner; the session key is a secret
# the owner never needs to see. Neither is ever logged.
set -eu
: "${ADMIN_PASSWORD:?ADMIN_PASSWORD must be set (archy generates it)}"
: "${SESSION_KEY:?SESSION_KEY must be set (archy generates it)}"
version="$(cat /etc/app-version)"
rm -rf /tmp/www
cp -r /app/www /tmp/www
sed -i "s|@VERSION@|$version|g" /tmp/www/index.html /tmp/www/admin/index.html
umask 077
printf '%s:admin:%s\n' "${AUTH_PATH:-/admin}" "$ADMIN_PASSWORD" >/tmp/httpd.conf
echo "vault: version $version listening on :8080, ${AUTH_PATH:-/admin} needs the admin password, session key of ${#SESSION_KEY} characters"
# PID 1 gets no default signal handling: run the server as a child and stop
# it on SIGTERM, so that "podman stop" takes milliseconds, not its timeout.
httpd -f -p 8080 -h /tmp/www -c /tmp/httpd.conf -r "Admin Vault" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
