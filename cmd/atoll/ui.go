package main

import (
	_ "embed"
	"net/http"
)

// The page is a query box over the API: enough to look at data without
// Grafana, which remains the real UI.
//
//go:embed ui/index.html
var indexHTML []byte

func uiHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(indexHTML)
	})
}
