// Package base is what the HTTP API's jobs share: who calls (the
// Authenticator, the User it puts in a request's context, the access a
// route needs), how an answer is written (JSON, errors, refusals), where a
// job mounts its routes (Mux), and the request and answer types more than
// one job speaks (the work queue's, the release gate's). The jobs (work,
// ingestapi, agents, dashboard) import it and never each other; it imports
// none of them. Package httpapi assembles the server from them.
package base

import (
	"encoding/json"
	"net/http"
)

// MaxRequestBytes bounds a request's body.
const MaxRequestBytes = 1 << 20

// Mux is where a job mounts its routes: the server serves each pattern
// ("METHOD /path"), counts its answers by route, and documents it.
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// ErrorBody is every error response.
type ErrorBody struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// WriteError answers with a JSON error body.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, ErrorBody{Code: code, Reason: http.StatusText(code), Message: msg})
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// IdempotencyKeyHeader makes a retried ingest request count once. For a
// batch, item i is keyed "<key>#<i>".
const IdempotencyKeyHeader = "Idempotency-Key"
