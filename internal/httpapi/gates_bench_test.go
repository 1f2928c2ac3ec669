package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// BenchmarkGate measures one gate request through the HTTP API as shipped,
// anonymous and with a bearer token (its TokenReview + SubjectAccessReview
// answers cached, the default), and the Authenticator alone with its cache
// and with the cache off (both reviews sent to the API server each time),
// so the cost of authentication and the cache's saving show as ratios.
func BenchmarkGate(b *testing.B) {
	f := setup(b)
	policy(b, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	cached := newServer(b, true)
	// The cache's saving: the Authenticator alone, with its cache and
	// without (no flag turns it off).
	authCached := authenticated(b, &base.Authenticator{Client: apiCS})
	uncached := authenticated(b, &base.Authenticator{Client: apiCS, CacheTTL: -1})
	for _, bc := range []struct {
		name, token string
		srv         *httptest.Server
	}{{"anonymous", "", cached}, {"token", f.allowed, cached}, {"auth-cached", f.allowed, authCached}, {"auth-uncached", f.allowed, uncached}} {
		srv := bc.srv
		url := srv.URL + "/v1/gates/" + f.ns + "/gateway"
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
				if bc.token != "" {
					req.Header.Set("Authorization", "Bearer "+bc.token)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
