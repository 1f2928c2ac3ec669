package shipped

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Request is one series of the API server's apiserver_request_total.
type Request struct {
	Verb        string // POST, PUT, PATCH, DELETE, GET, LIST, WATCH, APPLY, …
	Group       string
	Resource    string
	Subresource string
	DryRun      bool
	// Code is the HTTP status code of the answer, e.g. "201" or "409".
	Code string
}

// String is e.g. "PATCH alerts/status".
func (r Request) String() string {
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	return r.Verb + " " + res
}

// Write says the request changes stored state: a mutating verb on a stored
// resource, not a dry run. The review APIs (TokenReview,
// SubjectAccessReview, SelfSubjectReview) are answered, not stored.
func (r Request) Write() bool {
	switch r.Verb {
	case "GET", "LIST", "WATCH", "WATCHLIST", "CONNECT", "":
		return false
	}
	return !r.DryRun && !r.Review()
}

// Review says the request is a TokenReview, SubjectAccessReview or the like.
func (r Request) Review() bool {
	return r.Group == "authentication.k8s.io" || r.Group == "authorization.k8s.io"
}

// Background says the request is one the control plane and the replicas
// make at a steady pace whatever the load: leader election's Leases (the
// operator's and the API server's own) and the mirror finalizer probe's
// dry run. Measurements of a path leave them out.
func (r Request) Background() bool {
	return r.Resource == "leases" || r.DryRun
}

// Requests counts requests by series.
type Requests map[Request]float64

// APIServerRequests scrapes the API server's apiserver_request_total (as
// cluster admin, who may read /metrics).
func (e *Env) APIServerRequests(ctx context.Context) (Requests, error) {
	fams, err := e.APIServerMetrics(ctx)
	if err != nil {
		return nil, err
	}
	out := Requests{}
	f := fams["apiserver_request_total"]
	if f == nil {
		return nil, fmt.Errorf("the API server's /metrics has no apiserver_request_total")
	}
	for _, m := range f.GetMetric() {
		l := labels(m)
		r := Request{Verb: l["verb"], Group: l["group"], Resource: l["resource"], Subresource: l["subresource"], DryRun: l["dry_run"] != "", Code: l["code"]}
		if r.Resource == "" {
			continue // non-resource URLs: /metrics, /readyz, discovery
		}
		out[r] += m.GetCounter().GetValue()
	}
	return out, nil
}

// APIServerMetrics scrapes every metric family of the API server.
func (e *Env) APIServerMetrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	cs, err := kubernetes.NewForConfig(e.Control.Admin)
	if err != nil {
		return nil, err
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape the API server's /metrics: %w", err)
	}
	return parseMetrics(strings.NewReader(string(raw)))
}

// EtcdMetrics scrapes etcd's own /metrics (etcd_mvcc_db_total_size_in_bytes
// and the like) from its client URL.
func (e *Env) EtcdMetrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	u := e.Control.ControlPlane.Etcd.URL
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape etcd's /metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd's /metrics answered %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// Gauge sums the values of a family's series whose labels include match.
func Gauge(fams map[string]*dto.MetricFamily, name string, match map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	var sum float64
	found := false
	for _, m := range f.GetMetric() {
		l := labels(m)
		ok := true
		for k, v := range match {
			if l[k] != v {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		found = true
		switch {
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// Failed says the API server refused the request (any code but 2xx), e.g.
// 409 Conflict for a write with a stale resourceVersion.
func (r Request) Failed() bool { return !strings.HasPrefix(r.Code, "2") }

// ByCode sums series by status code.
func (r Requests) ByCode() map[string]float64 {
	out := map[string]float64{}
	for k, v := range r {
		out[k.Code] += v
	}
	return out
}

// Sub is r minus before, per series.
func (r Requests) Sub(before Requests) Requests {
	out := Requests{}
	for k, v := range r {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Filter keeps the series keep says yes to.
func (r Requests) Filter(keep func(Request) bool) Requests {
	out := Requests{}
	for k, v := range r {
		if keep(k) {
			out[k] = v
		}
	}
	return out
}

// Total sums every series.
func (r Requests) Total() float64 {
	var n float64
	for _, v := range r {
		n += v
	}
	return n
}

// ByKind sums series by their String (verb and resource), largest first.
func (r Requests) ByKind() []KindCount {
	sums := map[string]float64{}
	for k, v := range r {
		sums[k.String()] += v
	}
	out := make([]KindCount, 0, len(sums))
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, KindCount{k, sums[k]})
	}
	slices.SortStableFunc(out, func(a, b KindCount) int {
		switch {
		case a.N > b.N:
			return -1
		case a.N < b.N:
			return 1
		}
		return 0
	})
	return out
}

// KindCount is a number of requests of one verb on one resource.
type KindCount struct {
	Kind string
	N    float64
}

// Quiesce waits until the API server has seen no write (background writes
// aside) for quiet, for at most limit, so a measurement counts the
// operator's trailing writes too. It returns whether it became quiet.
func (e *Env) Quiesce(ctx context.Context, quiet, limit time.Duration) (bool, error) {
	writes := func() (float64, error) {
		r, err := e.APIServerRequests(ctx)
		if err != nil {
			return 0, err
		}
		return r.Filter(func(q Request) bool { return q.Write() && !q.Background() }).Total(), nil
	}
	last, err := writes()
	if err != nil {
		return false, err
	}
	since := time.Now()
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, limit, false, func(context.Context) (bool, error) {
		n, err := writes()
		if err != nil {
			return false, err
		}
		if n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= quiet, nil
	})
	if wait.Interrupted(err) {
		return false, nil
	}
	return err == nil, err
}

// LeaderElectionID is the Lease `alertbridge run --leader-elect` takes.
const LeaderElectionID = "alertbridge.ops.alertbridge.io"

// Leader is the running replica that acquired the leader election Lease
// last, nil while none has.
func (e *Env) Leader() *Replica {
	var leader *Replica
	var at time.Time
	for _, r := range e.Replicas {
		select {
		case <-r.Done():
			continue
		default:
		}
		if t, ok := r.acquiredLease(); ok && (leader == nil || t.After(at)) {
			leader, at = r, t
		}
	}
	return leader
}

// ReplicaMetrics scrapes replica r's /metrics as Prometheus would: with the
// token of a ServiceAccount bound to the shipped alertbridge-metrics-reader
// ClusterRole (the endpoint authenticates and authorises it with the API
// server). The certificate is controller-runtime's self-signed one, which a
// ServiceMonitor also skips verifying.
func (e *Env) ReplicaMetrics(ctx context.Context, r *Replica) (map[string]*dto.MetricFamily, error) {
	if r.MetricsURL == "" {
		return nil, fmt.Errorf("%s serves no metrics", r.Name)
	}
	tok, err := e.metricsToken(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.MetricsURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // G402: controller-runtime's self-signed metrics certificate
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s: %w", r.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s's /metrics answered %s", r.Name, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// metricsToken is a token of ServiceAccount metrics-scraper in the install
// namespace, bound cluster-wide to alertbridge-metrics-reader.
func (e *Env) metricsToken(ctx context.Context) (string, error) {
	e.scraperOnce.Do(func() {
		ns, name := e.Namespace(), "metrics-scraper"
		for _, obj := range []client.Object{
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}},
			&rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "alertbridge-" + name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-metrics-reader"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
			},
		} {
			if err := e.Admin.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
				e.scraperErr = err
				return
			}
		}
		u := &User{Namespace: ns, Name: name, env: e}
		e.scraperToken, e.scraperErr = u.Token(ctx, "")
	})
	return e.scraperToken, e.scraperErr
}

// Histogram sums a histogram family's series: the count, the sum and the
// cumulative count at each upper bound.
func Histogram(fams map[string]*dto.MetricFamily, name string) (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = map[float64]uint64{}
	f, ok := fams[name]
	if !ok {
		return 0, 0, buckets
	}
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		count += h.GetSampleCount()
		sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	return count, sum, buckets
}

// CPUProfiles takes a CPU profile of d from the API server and from every
// replica that serves /debug/pprof (Options.Profile), at once, and writes
// them to dir as PREFIX-NAME.pprof (NAME: kube-apiserver or the replica's
// name). It returns the files written.
func (e *Env) CPUProfiles(ctx context.Context, d time.Duration, dir, prefix string) ([]string, error) {
	return e.profiles(ctx, "profile?seconds="+strconv.Itoa(int(d.Seconds())), d, dir, prefix)
}

// HeapProfiles writes the heap profile (live objects at the last GC) of
// the API server and every replica that serves /debug/pprof, as
// CPUProfiles does.
func (e *Env) HeapProfiles(ctx context.Context, dir, prefix string) ([]string, error) {
	return e.profiles(ctx, "heap?gc=1", 0, dir, prefix)
}

// profiles fetches /debug/pprof/WHAT from each process at once; d is how
// long the profile takes to answer.
func (e *Env) profiles(ctx context.Context, what string, d time.Duration, dir, prefix string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(e.Control.Admin)
	if err != nil {
		return nil, err
	}
	path, query, _ := strings.Cut(what, "?")
	key, val, _ := strings.Cut(query, "=")
	fetch := map[string]func() ([]byte, error){
		"kube-apiserver": func() ([]byte, error) {
			return cs.Discovery().RESTClient().Get().AbsPath("/debug/pprof/"+path).Param(key, val).Timeout(d + time.Minute).DoRaw(ctx)
		},
	}
	for _, r := range e.All() {
		if r.PprofURL == "" {
			continue
		}
		fetch[r.Name] = func() ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.PprofURL+"/debug/pprof/"+what, nil)
			if err != nil {
				return nil, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, err
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("%s answered %s", r.Name, resp.Status)
			}
			return io.ReadAll(resp.Body)
		}
	}
	var (
		mu    sync.Mutex
		files []string
		errs  []error
		wg    sync.WaitGroup
	)
	for name, f := range fetch {
		wg.Go(func() {
			b, err := f()
			if err == nil {
				path := filepath.Join(dir, prefix+"-"+name+".pprof")
				if err = os.WriteFile(path, b, 0o600); err == nil {
					mu.Lock()
					files = append(files, path)
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("profile of %s: %w", name, err))
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(files)
	return files, errors.Join(errs...)
}
