package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi"
)

// reviewCounter counts the TokenReviews and SubjectAccessReviews sent.
type reviewCounter struct{ tokens, access atomic.Int64 }

func (c *reviewCounter) RoundTrip(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/tokenreviews"):
			c.tokens.Add(1)
		case strings.HasSuffix(r.URL.Path, "/subjectaccessreviews"):
			c.access.Add(1)
		}
		return next.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countingAuth is an Authenticator whose review calls are counted.
func countingAuth(t testing.TB, ttl time.Duration, clk *clocktesting.FakeClock) (*httpapi.Authenticator, *reviewCounter) {
	t.Helper()
	n := &reviewCounter{}
	c := rest.CopyConfig(env.API)
	c.Wrap(n.RoundTrip)
	client, err := kubernetes.NewForConfig(c)
	must(t, err)
	a := &httpapi.Authenticator{Client: client, CacheTTL: ttl}
	if clk != nil {
		a.Clock = clk
	}
	return a, n
}

func TestAuthCache(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	clk := clocktesting.NewFakeClock(time.Now())
	auth, n := countingAuth(t, 0, clk)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{}, apiK8s, auth, nil).Handler())
	t.Cleanup(srv.Close)
	path := "/v1/gates/" + f.ns + "/gateway"
	for range 20 {
		if code, _ := call(t, srv, http.MethodGet, path, f.allowed); code != http.StatusOK {
			t.Fatalf("allowed: %d", code)
		}
		if code, _ := call(t, srv, http.MethodGet, path, f.denied); code != http.StatusForbidden {
			t.Fatalf("denied: %d", code)
		}
		if code, _ := call(t, srv, http.MethodGet, path, "not-a-token"); code != http.StatusUnauthorized {
			t.Fatalf("invalid: %d", code)
		}
	}
	if n.tokens.Load() != 3 || n.access.Load() != 2 {
		t.Fatalf("60 requests of 3 callers: %d TokenReviews, %d SubjectAccessReviews; want 3 and 2", n.tokens.Load(), n.access.Load())
	}
	// Another namespace is another question.
	other := setup(t)
	if code, _ := call(t, srv, http.MethodGet, "/v1/gates/"+other.ns+"/gateway", f.allowed); code != http.StatusForbidden {
		t.Fatalf("other namespace: %d", code)
	}
	if n.access.Load() != 3 {
		t.Fatalf("%d SubjectAccessReviews, want 3", n.access.Load())
	}
	// Past the TTL the API server is asked again.
	clk.Step(httpapi.DefaultAuthCacheTTL + time.Second)
	if code, _ := call(t, srv, http.MethodGet, path, f.allowed); code != http.StatusOK {
		t.Fatalf("after the TTL: %d", code)
	}
	if n.tokens.Load() != 4 || n.access.Load() != 4 {
		t.Fatalf("after the TTL: %d TokenReviews, %d SubjectAccessReviews; want 4 and 4", n.tokens.Load(), n.access.Load())
	}
	// A negative TTL turns the cache off.
	off, m := countingAuth(t, -1, nil)
	srv2 := httptest.NewServer(httpapi.New(httpapi.Config{}, apiK8s, off, nil).Handler())
	t.Cleanup(srv2.Close)
	for range 5 {
		call(t, srv2, http.MethodGet, path, f.allowed)
	}
	if m.tokens.Load() != 5 || m.access.Load() != 5 {
		t.Fatalf("cache off: %d TokenReviews, %d SubjectAccessReviews; want 5 and 5", m.tokens.Load(), m.access.Load())
	}
}
