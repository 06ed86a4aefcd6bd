// Package page is the node's marketplace page: static assets embedded in
// the binary (nothing from a CDN), served at / beside the API they call.
// The page browses discovered and catalog apps with their publishers and
// trust, installs with a live progress bar fed by the operation's event
// stream, manages installed apps, and shows the node's status. Changes
// need the API token, which the page takes from the URL fragment that
// `archy node page` prints (a fragment never reaches a server or a log)
// or asks for; read-only visitors (the browse listener) see no controls.
package page

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Handler serves the page's files: / is index.html.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Nothing but our own files and API: no inline script, no frames.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
