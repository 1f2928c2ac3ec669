package outbound

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
)

func TestOrigin(t *testing.T) {
	same := [][2]string{
		{"http://prom", "http://prom:80/api"},
		{"https://Prom.example/x", "https://prom.example:443/y?z"},
		{"http://[::1]:9090", "http://[::1]:9090/api/v1/query"},
	}
	for _, p := range same {
		if a, b := Origin(mustParse(t, p[0])), Origin(mustParse(t, p[1])); a != b {
			t.Errorf("%s and %s: %s != %s", p[0], p[1], a, b)
		}
	}
	other := [][2]string{
		{"http://prom", "https://prom"},
		{"http://127.0.0.1:9090", "http://127.0.0.1:9091"},
		{"http://prom", "http://prom.evil.example"},
		{"http://user@prom", "http://prom@evil.example"},
	}
	for _, p := range other {
		if a, b := Origin(mustParse(t, p[0])), Origin(mustParse(t, p[1])); a == b {
			t.Errorf("%s and %s are one origin %s", p[0], p[1], a)
		}
	}
}

func TestCheckRedirect(t *testing.T) {
	req := func(s string) *http.Request { return &http.Request{URL: mustParse(t, s)} }
	first := []*http.Request{req("http://prom:9090/api/v1/query")}
	if err := CheckRedirect(req("http://prom:9090/prometheus/api/v1/query"), first); err != nil {
		t.Fatalf("same origin: %v", err)
	}
	err := CheckRedirect(req("http://prom:9091/api/v1/query"), first)
	var re *RedirectError
	if !errors.As(err, &re) || re.From != "http://prom:9090" || re.To != "http://prom:9091" {
		t.Fatalf("another port: %v", err)
	}
	via := make([]*http.Request, MaxRedirects+1)
	for i := range via {
		via[i] = first[0]
	}
	if err := CheckRedirect(req("http://prom:9090/again"), via); err == nil {
		t.Fatal("an endless same-origin redirect loop was followed")
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
