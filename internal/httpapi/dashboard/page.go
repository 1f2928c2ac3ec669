package dashboard

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// web holds the dashboard page: plain HTML, CSS and JavaScript embedded in
// the binary, no external CDN.
//
//go:embed web
var web embed.FS

// pageCSP keeps the page to its own assets and its own API.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageRoutes serves the page at / and its assets under /ui/. The files are
// static and carry no data: everything shown comes from
// /v1/alerts/dashboard, which is authorised (the page sends the token the
// user enters, or nothing under --dashboard-anonymous).
func (s *Board) pageRoutes(m base.Mux) {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix("/ui/", http.FileServerFS(sub))
	m.Handle("GET /ui/", pageHeaders(assets))
	m.Handle("GET /{$}", pageHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})))
}

func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
