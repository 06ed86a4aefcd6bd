# Sourced by the CGI scripts: db COMMAND [ARGS] sends one request to guestbook-db.
db() {
	printf 'AUTH %s %s\n' "$DB_PASSWORD" "$*" | nc -w 3 "${DB_HOST:-db}" "${DB_PORT:-5432}"
}
