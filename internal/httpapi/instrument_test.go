package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/alertbridge/alertbridge/internal/metrics"
)

// Every answer is counted and timed under its route's pattern, never the
// request's own path; paths no route serves share one label.
func TestAnswersAreCountedByRoute(t *testing.T) {
	srv := newServer(t, false)
	doc := metrics.HTTPRequests.WithLabelValues("/openapi.json", "get", "200")
	gone := metrics.HTTPRequests.WithLabelValues("unmatched", "get", "404")
	docBefore, goneBefore := testutil.ToFloat64(doc), testutil.ToFloat64(gone)
	timedBefore := timed(t, "/openapi.json")
	for _, path := range []string{"/openapi.json", "/openapi.json", "/no-such-route/x1", "/no-such-route/x2"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	// promhttp counts once the handler has returned, which may be just
	// after the client read the answer: wait for the counts to arrive.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (testutil.ToFloat64(doc)-docBefore < 2 || testutil.ToFloat64(gone)-goneBefore < 2 || timed(t, "/openapi.json")-timedBefore < 2) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(doc) - docBefore; got != 2 {
		t.Errorf("GET /openapi.json counted %v times, want 2", got)
	}
	if got := testutil.ToFloat64(gone) - goneBefore; got != 2 {
		t.Errorf("two unmatched paths counted %v times under %q, want 2", got, "unmatched")
	}
	if got := timed(t, "/openapi.json") - timedBefore; got != 2 {
		t.Errorf("GET /openapi.json timed %d times, want 2", got)
	}
}

// timed is how many GETs of route the duration histogram observed.
func timed(t *testing.T, route string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.HTTPRequestSeconds.WithLabelValues(route, "get").(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
