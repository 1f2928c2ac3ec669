package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
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
func countingAuth(t testing.TB, ttl time.Duration) (*base.Authenticator, *reviewCounter) {
	t.Helper()
	n := &reviewCounter{}
	c := rest.CopyConfig(env.API)
	c.Wrap(n.RoundTrip)
	client, err := kubernetes.NewForConfig(c)
	must(t, err)
	return &base.Authenticator{Client: client, CacheTTL: ttl}, n
}

// TokenReview and SubjectAccessReview answers, yes and no, are reused for
// the cache's TTL, then asked again; a negative TTL turns the cache off.
func TestAuthCache(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	auth, n := countingAuth(t, 0)
	srv := authenticated(t, auth)
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

	// Past the TTL the API server is asked again (the library's caches keep
	// real time: a short TTL, and the requests go on until it has passed).
	short, m := countingAuth(t, time.Second)
	srv1 := authenticated(t, short)
	if code, _ := call(t, srv1, http.MethodGet, path, f.allowed); code != http.StatusOK || m.tokens.Load() != 1 || m.access.Load() != 1 {
		t.Fatalf("first request: %d, %d TokenReviews, %d SubjectAccessReviews", code, m.tokens.Load(), m.access.Load())
	}
	gomega.NewWithT(t).Eventually(func() error {
		if code, _ := call(t, srv1, http.MethodGet, path, f.allowed); code != http.StatusOK {
			return fmt.Errorf("after the TTL: %d", code)
		}
		if m.tokens.Load() < 2 || m.access.Load() < 2 {
			return fmt.Errorf("%d TokenReviews, %d SubjectAccessReviews: not asked again yet", m.tokens.Load(), m.access.Load())
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())

	// A negative TTL turns the cache off.
	off, o := countingAuth(t, -1)
	srv2 := authenticated(t, off)
	for range 5 {
		call(t, srv2, http.MethodGet, path, f.allowed)
	}
	if o.tokens.Load() != 5 || o.access.Load() != 5 {
		t.Fatalf("cache off: %d TokenReviews, %d SubjectAccessReviews; want 5 and 5", o.tokens.Load(), o.access.Load())
	}
}
