package kube

import (
	"net/http"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, http.ErrServerClosed
}

// The CLI's kinds map without a single request to the API server; other
// kinds fall through to discovery.
func TestRESTMapperNeedsNoDiscoveryForOurKinds(t *testing.T) {
	tr := &countingTransport{}
	m, err := NewRESTMapper(&rest.Config{Host: "https://127.0.0.1:1"}, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	for _, gk := range []schema.GroupKind{
		{Group: v1.GroupVersion.Group, Kind: "Alert"},
		{Group: v1.GroupVersion.Group, Kind: "SLOPolicy"},
		{Group: v1.GroupVersion.Group, Kind: "AlertRoutingPolicy"},
		{Group: "authentication.k8s.io", Kind: "SelfSubjectReview"},
	} {
		mapping, err := m.RESTMapping(gk)
		if err != nil {
			t.Fatalf("%s: %v", gk, err)
		}
		if gk.Kind == "SLOPolicy" && mapping.Resource.Resource != "slopolicies" {
			t.Fatalf("SLOPolicy maps to %s", mapping.Resource)
		}
	}
	if tr.n.Load() != 0 {
		t.Fatalf("%d requests for kinds known in advance", tr.n.Load())
	}
	if _, err := m.RESTMapping(schema.GroupKind{Group: "apps", Kind: "Deployment"}); err == nil || tr.n.Load() == 0 {
		t.Fatal("an unknown kind was not looked up")
	}
}
