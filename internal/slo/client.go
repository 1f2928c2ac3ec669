package slo

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Secret keys a PrometheusSource secretRef may carry.
const (
	SecretKeyToken    = "token"
	SecretKeyUsername = "username"
	SecretKeyPassword = "password"
	SecretKeyCA       = "ca.crt"
	// SecretKeyHeaderPrefix starts keys naming extra headers, e.g.
	// header.X-Scope-OrgID for Mimir's tenant.
	SecretKeyHeaderPrefix = "header."
)

// Auth is how requests to the source are authenticated.
type Auth struct {
	Token    string
	Username string
	Password string
	CA       []byte
	Headers  http.Header
}

// AuthFromSecret reads Auth from a Secret's data.
func AuthFromSecret(data map[string][]byte) (Auth, error) {
	a := Auth{
		Token:    strings.TrimSpace(string(data[SecretKeyToken])),
		Username: string(data[SecretKeyUsername]),
		Password: string(data[SecretKeyPassword]),
		CA:       data[SecretKeyCA],
		Headers:  http.Header{},
	}
	if a.Token != "" && a.Username != "" {
		return Auth{}, errors.New("secret has both token and username: choose bearer or basic auth")
	}
	for k, v := range data {
		if name, ok := strings.CutPrefix(k, SecretKeyHeaderPrefix); ok && name != "" {
			a.Headers.Set(name, strings.TrimSpace(string(v)))
		}
	}
	return a, nil
}

// Measurement is one SLI value in exact decimal arithmetic.
type Measurement struct {
	// Value is nil when the query returned no data (empty vector or NaN).
	Value *big.Rat
	// Inf is set for +Inf (e.g. histogram_quantile landing in the +Inf
	// bucket): worse than any objective.
	Inf bool
}

// NoData reports whether the query returned nothing usable.
func (m Measurement) NoData() bool { return m.Value == nil && !m.Inf }

// Source answers instant PromQL queries.
type Source interface {
	Query(ctx context.Context, query string, at time.Time) (Measurement, error)
}

// Client is a Source backed by the Prometheus HTTP API (Prometheus, Thanos,
// Mimir, VictoriaMetrics all serve /api/v1/query).
type Client struct {
	api       promv1.API
	transport *http.Transport
}

// NewClient builds a client for the API at url.
func NewClient(url string, auth Auth, timeout time.Duration) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(auth.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(auth.CA) {
			return nil, errors.New("ca.crt holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c, err := api.NewClient(api.Config{
		Address: url,
		Client:  &http.Client{Transport: &authTransport{auth: auth, next: tr}, Timeout: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the Prometheus client for %s: %w", url, err)
	}
	return &Client{api: promv1.NewAPI(c), transport: tr}, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Key identifies the credentials, so a cached client is replaced when its
// Secret changes.
func (a Auth) Key() string {
	h := sha256.New()
	for _, s := range []string{a.Token, a.Username, a.Password, string(a.CA)} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	names := slices.Sorted(maps.Keys(a.Headers))
	for _, k := range names {
		fmt.Fprintf(h, "%d:%s=%q;", len(k), k, a.Headers[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Query runs an instant query and reduces its result to one Measurement.
// A vector of several series yields the worst (largest) value, so an
// overridden query that forgot to aggregate errs on the side of blocking.
func (c *Client) Query(ctx context.Context, query string, at time.Time) (Measurement, error) {
	v, _, _, err := c.api.Query(ctx, query, at)
	if err != nil {
		return Measurement{}, fmt.Errorf("failed to query %q: %w", query, err)
	}
	return reduce(v)
}

func reduce(v model.Value) (Measurement, error) {
	var vals []float64
	switch r := v.(type) {
	case model.Vector:
		for _, s := range r {
			vals = append(vals, float64(s.Value))
		}
	case *model.Scalar:
		vals = append(vals, float64(r.Value))
	default:
		return Measurement{}, fmt.Errorf("query returned a %s, want a vector or scalar", v.Type())
	}
	var worst Measurement
	for _, f := range vals {
		m, err := FromFloat(f)
		if err != nil {
			return Measurement{}, err
		}
		if worst.Inf || m.NoData() {
			continue
		}
		if m.Inf || worst.Value == nil || m.Value.Cmp(worst.Value) > 0 {
			worst = m
		}
	}
	return worst, nil
}

// FromFloat converts a sample value to exact decimal. Prometheus writes
// samples as the shortest decimal that round-trips; that decimal, not the
// binary float, is the value compared, so "0.3" seconds is exactly 300ms.
func FromFloat(f float64) (Measurement, error) {
	switch {
	case math.IsNaN(f):
		return Measurement{}, nil
	case math.IsInf(f, 1):
		return Measurement{Inf: true}, nil
	case math.IsInf(f, -1):
		return Measurement{}, errors.New("query returned -Inf")
	}
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	if !ok {
		return Measurement{}, fmt.Errorf("failed to parse sample %v", f)
	}
	return Measurement{Value: r}, nil
}

type authTransport struct {
	auth Auth
	next http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, vs := range t.auth.Headers {
		req.Header[k] = vs
	}
	switch {
	case t.auth.Token != "":
		req.Header.Set("Authorization", "Bearer "+t.auth.Token)
	case t.auth.Username != "":
		req.SetBasicAuth(t.auth.Username, t.auth.Password)
	}
	return t.next.RoundTrip(req)
}
