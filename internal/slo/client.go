package slo

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/alertbridge/alertbridge/internal/outbound"
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
// Mimir, VictoriaMetrics all serve /api/v1/query). Its credentials and
// headers go only to the origin of its URL (a redirect elsewhere is
// refused), and its errors are in our words with the HTTP status code,
// never the source's own text.
type Client struct {
	api       promv1.API
	transport *http.Transport
}

// maxAnswerBytes bounds an answer's body: an instant query of an SLI is a
// handful of series, and a source must not make the operator hold more.
const maxAnswerBytes = 4 << 20

// NewClient builds a client for the API at rawURL.
func NewClient(rawURL string, auth Auth, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("spec.source.prometheus.url is not an http or https URL")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(auth.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(auth.CA) {
			return nil, errors.New("ca.crt holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c, err := api.NewClient(api.Config{
		Address: rawURL,
		Client: &http.Client{
			Transport:     &authTransport{auth: auth, origin: outbound.Origin(u), next: tr},
			CheckRedirect: outbound.CheckRedirect,
			Timeout:       timeout,
		},
	})
	if err != nil {
		return nil, errors.New("failed to create the Prometheus client for spec.source.prometheus.url")
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
	answer := &lastAnswer{}
	v, _, _, err := c.api.Query(context.WithValue(ctx, lastAnswerKey{}, answer), query, at)
	if err != nil {
		return Measurement{}, fmt.Errorf("query %q failed: %w", query, queryError(err, int(answer.code.Load())))
	}
	return reduce(v)
}

// queryError says why a query failed in our words. The Prometheus client
// library puts the source's own error text (or its whole body) in the
// error it returns; that text is the source's to choose, so only the kind
// of failure and the HTTP status code are kept.
func queryError(err error, code int) error {
	var pe *promv1.Error
	switch {
	case errors.Is(err, errAnswerTooLarge):
		return errAnswerTooLarge
	case !errors.As(err, &pe):
		return outbound.Wrap(err)
	}
	var msg string
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		msg = "the source refused the request's credentials (check spec.source.prometheus.secretRef)"
	case pe.Type == promv1.ErrBadData:
		msg = "the source refused the query as invalid (try it in the source's own UI to see why)"
	case pe.Type == promv1.ErrTimeout:
		msg = "the query timed out at the source"
	case pe.Type == promv1.ErrCanceled:
		msg = "the source canceled the query"
	case pe.Type == promv1.ErrExec:
		msg = "the source failed to run the query"
	case pe.Type == promv1.ErrServer:
		msg = "the source failed"
	case pe.Type == promv1.ErrClient:
		msg = "the source refused the request"
	default:
		msg = "the source's answer is not a Prometheus API answer"
	}
	if code != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", code)
	}
	return errors.New(msg)
}

// lastAnswer carries the status code of a query's last HTTP answer from
// the transport back to Query, which the library's errors do not say.
type lastAnswer struct{ code atomic.Int32 }

type lastAnswerKey struct{}

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

// authTransport adds the credentials and headers to requests for origin and
// refuses any other request (CheckRedirect refuses redirects elsewhere
// first; this holds even if a library sent one some other way). It notes
// each answer's status code for Query and bounds the answer's size.
type authTransport struct {
	auth   Auth
	origin string
	next   http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if o := outbound.Origin(req.URL); o != t.origin {
		return nil, &outbound.RedirectError{From: t.origin, To: o}
	}
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
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if a, ok := req.Context().Value(lastAnswerKey{}).(*lastAnswer); ok {
		a.code.Store(int32(resp.StatusCode)) //nolint:gosec // G115: HTTP status codes are three digits.
	}
	resp.Body = &boundedBody{r: io.LimitReader(resp.Body, maxAnswerBytes+1), c: resp.Body}
	return resp, nil
}

// boundedBody fails a read past maxAnswerBytes instead of truncating.
type boundedBody struct {
	r io.Reader
	c io.Closer
	n int64
}

var errAnswerTooLarge = fmt.Errorf("the source's answer exceeds %d bytes", maxAnswerBytes)

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > maxAnswerBytes {
		return n, errAnswerTooLarge
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.c.Close() }
