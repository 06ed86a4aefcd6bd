#!/bin/sh
state="warming up"
[ -f /tmp/www/healthz ] && state="ready"
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
cat <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Slow Start</title></head>
<body>
<h1>Slow Start</h1>
<p id="state">$state</p>
<p id="version">version $(cat /etc/app-version)</p>
</body>
</html>
HTML
