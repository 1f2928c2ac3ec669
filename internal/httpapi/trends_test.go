package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alertbridge/alertbridge/internal/query"
)

// trendsCounts are the new Alerts and occurrences over the window of
// GET /v1/alerts/trends.
func trendsCounts(t testing.TB, srv *httptest.Server, ns, tok string) (query.Trends, int64, int64, error) {
	t.Helper()
	var tr query.Trends
	if code, body := get(t, srv, "/v1/alerts/trends?namespace="+ns+"&windowMinutes=60", tok, &tr); code != http.StatusOK {
		return tr, 0, 0, fmt.Errorf("trends: %d %s", code, body)
	}
	var alerts, occ int64
	for _, s := range tr.NewAlerts {
		for _, v := range s {
			alerts += v
		}
	}
	for _, s := range tr.Occurrences {
		for _, v := range s {
			occ += v
		}
	}
	return tr, alerts, occ, nil
}

// checkTrendsFromTheMirror requires the trends served from the cache and
// from the mirror to count wantCache and wantMirror new Alerts (the mirror
// keeps deleted ones), each naming its source.
func checkTrendsFromTheMirror(t testing.TB, cached, history *httptest.Server, ns, tok string, wantCache, wantMirror int64) {
	t.Helper()
	within(t, catchUp, func() error {
		c, cAlerts, _, err := trendsCounts(t, cached, ns, tok)
		if err != nil {
			return err
		}
		m, mAlerts, _, err := trendsCounts(t, history, ns, tok)
		if err != nil {
			return err
		}
		if c.Source != "cluster" || m.Source != "mirror" {
			return fmt.Errorf("sources %q and %q", c.Source, m.Source)
		}
		if cAlerts != wantCache || mAlerts != wantMirror {
			return fmt.Errorf("new Alerts: cache %d (want %d), mirror %d (want %d)", cAlerts, wantCache, mAlerts, wantMirror)
		}
		return nil
	})
}
