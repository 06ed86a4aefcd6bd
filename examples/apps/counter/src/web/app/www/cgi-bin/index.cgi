#!/bin/sh
# GET /: shows the counter. Reading never changes the data.
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
cat <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Visit Counter</title></head>
<body>
<h1>Visit Counter</h1>
<p><span id="visits">$(cat /data/visits)</span> visits since <span id="created">$(cat /data/created)</span></p>
<form method="post" action="/cgi-bin/visit"><button type="submit">Visit</button></form>
<h2>Last visits</h2>
<pre id="log">
$(tail -n 10 /data/visits.log 2>/dev/null)
</pre>
<p id="version">version $(cat /etc/app-version)</p>
</body>
</html>
HTML
