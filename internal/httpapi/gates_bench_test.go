package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// BenchmarkGate measures one gate request, anonymous and with a bearer
// token (TokenReview + SubjectAccessReview against the API server), so the
// cost of authentication shows as a ratio.
func BenchmarkGate(b *testing.B) {
	f := setup(b)
	policy(b, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	srv := newServer(b, true)
	url := srv.URL + "/v1/gates/" + f.ns + "/gateway"
	for _, bc := range []struct{ name, token string }{{"anonymous", ""}, {"token", f.allowed}} {
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
