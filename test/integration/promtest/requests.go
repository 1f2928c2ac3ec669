package promtest

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// RequestsPerScrape is how many requests Requests records per service and
// scrape; error shares are in units of 1/RequestsPerScrape (0.01%).
const RequestsPerScrape = 10000

// LatencyBuckets are the upper bounds (seconds) of the request-duration
// histogram Requests records for services given a latency.
var LatencyBuckets = prometheus.DefBuckets

// Requests is a service's /metrics the test controls: every scrape records
// another RequestsPerScrape requests of http_requests_total{service,env,
// code}, of which the service's current error count are 500s, so rates
// over any window follow the error shares the test sets. A service given a
// latency (SetLatency) also has every one of those requests observed at
// that latency in http_request_duration_seconds{service,env}, the
// histogram the default latency query reads.
type Requests struct {
	env      string
	mu       sync.Mutex
	errors   map[string]int     // per RequestsPerScrape, by service
	latency  map[string]float64 // seconds, by service; unset: no histogram
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewRequests records requests for env.
func NewRequests(env string) *Requests {
	return &Requests{env: env, errors: map[string]int{}, latency: map[string]float64{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests by status code.",
		}, []string{"service", "env", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency.", Buckets: LatencyBuckets,
		}, []string{"service", "env"}),
	}
}

// Set makes errors of every RequestsPerScrape requests of service fail
// from the next scrape on (5 is 0.05%, 200 is 2%).
func (r *Requests) Set(service string, errors int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors[service] = errors
}

// SetLatency makes every request of service (Set starts its requests)
// take seconds from the next scrape on, in the request-duration histogram.
// histogram_quantile interpolates within LatencyBuckets, so a p95 reads as
// a point of the bucket that holds seconds, not seconds itself.
func (r *Requests) SetLatency(service string, seconds float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency[service] = seconds
}

// Describe implements prometheus.Collector.
func (r *Requests) Describe(ch chan<- *prometheus.Desc) {
	r.requests.Describe(ch)
	r.duration.Describe(ch)
}

// Collect implements prometheus.Collector: one scrape, one batch.
func (r *Requests) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	for svc, n := range r.errors {
		r.requests.WithLabelValues(svc, r.env, "200").Add(float64(RequestsPerScrape - n))
		// The 500 series exists from the start, so rates see no new series.
		r.requests.WithLabelValues(svc, r.env, "500").Add(float64(n))
		if s, ok := r.latency[svc]; ok {
			h := r.duration.WithLabelValues(svc, r.env)
			for range RequestsPerScrape {
				h.Observe(s)
			}
		}
	}
	r.mu.Unlock()
	r.requests.Collect(ch)
	r.duration.Collect(ch)
}

// Serve serves /metrics on a loopback port until stop.
func (r *Requests) Serve() (addr string, stop func(), err error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(r); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}
