// Package testhttp gives tests an HTTP server that records the requests it
// receives, for specs that check what reached which origin.
package testhttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
)

// TB is the part of testing.TB (and Ginkgo's GinkgoT) a Recorder needs.
type TB interface {
	Helper()
	Cleanup(func())
}

// Recorder is a test HTTP server that records every request before h
// answers it; it closes when the test ends.
type Recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

// NewRecorder starts a Recorder answering with h.
func NewRecorder(t TB, h http.HandlerFunc) *Recorder {
	t.Helper()
	r := &Recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Clone(context.Background()))
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// Received is the requests so far, oldest first (their bodies are not kept).
func (r *Recorder) Received() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}
