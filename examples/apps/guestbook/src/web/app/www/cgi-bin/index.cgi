#!/bin/sh
. /app/db.sh
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
cat <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Guestbook</title></head>
<body>
<h1>Guestbook</h1>
<p id="version">version $(cat /etc/app-version), $(db COUNT) entries</p>
<form method="post" action="/cgi-bin/sign">
<input name="message" maxlength="200" placeholder="Say hello">
<button type="submit">Sign</button>
</form>
<ul id="entries">
HTML
db LIST | while IFS="$(printf '\t')" read -r when text; do
	[ "$when" = "." ] && break
	printf '<li><time>%s</time> %s</li>\n' "$(httpd -e "$when")" "$(httpd -e "$text")"
done
printf '</ul>\n</body>\n</html>\n'
