package query

import (
	"cmp"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Trends is the dashboard's view over time (GET /v1/alerts/trends): per
// interval of the window, the new Alerts (stacked by their status now) and
// their occurrences (stacked by severity); the release gates' decisions over
// time; and MTTA and MTTR for the window. The same function builds it from
// the cluster's objects and from the mirror's rows.
type Trends struct {
	Namespace       string    `json:"namespace,omitempty"`
	WindowMinutes   int64     `json:"windowMinutes"`
	IntervalSeconds int64     `json:"intervalSeconds"`
	GeneratedAt     time.Time `json:"generatedAt"`
	// Source is "mirror" (PostgreSQL history) or "cluster" (objects still in
	// the cluster: Alerts folded or deleted and past gate decisions are gone).
	Source string `json:"source"`
	// Buckets are the start times of the intervals, oldest first; every
	// series below has one value per bucket.
	Buckets []time.Time `json:"buckets"`
	// NewAlerts counts the Alerts created in each interval, by phase (New,
	// Processing, Acked, Failed, Deduplicated).
	NewAlerts map[string][]int64 `json:"newAlerts"`
	// Occurrences estimates the occurrences in each interval, by severity.
	// An Alert records its first and last occurrence and a count, not each
	// occurrence: one is put at firstSeenAt, one at lastSeenAt and the rest
	// spread evenly between them.
	Occurrences map[string][]int64 `json:"occurrences"`
	// Gates are the decisions of each SLOPolicy over the window.
	Gates []GateTrend `json:"gates"`
	// MTTA is created → acked of the Alerts acked in the window.
	MTTA Duration `json:"mtta"`
	// MTTR is opened → resolved of the Incidents resolved in the window.
	MTTR Duration `json:"mttr"`
}

// GateTrend is one SLOPolicy's decisions over the window, oldest first.
type GateTrend struct {
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	Service   string      `json:"service"`
	Env       string      `json:"env"`
	Points    []GatePoint `json:"points"`
}

// GatePoint is a decision taken at At (an evaluation, or since when the
// cluster's status says it holds).
type GatePoint struct {
	At       time.Time `json:"at"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason,omitempty"`
}

// GateEvaluation is one recorded evaluation of an SLOPolicy (the mirror's
// slo_evaluations rows).
type GateEvaluation struct {
	Namespace string
	Name      string
	Service   string
	Env       string
	GatePoint
}

// Duration summarises how long something took, over Count samples.
type Duration struct {
	Count         int64 `json:"count"`
	MeanSeconds   int64 `json:"meanSeconds"`
	MedianSeconds int64 `json:"medianSeconds"`
	MaxSeconds    int64 `json:"maxSeconds"`
}

// TrendInput is what trends are built from: the Alerts seen in the window,
// the Incidents resolved in it, the recorded gate evaluations (mirror only)
// and the SLOPolicies as they are now.
type TrendInput struct {
	Alerts      []v1.Alert
	Incidents   []v1.Incident
	Evaluations []GateEvaluation
	Policies    []v1.SLOPolicy
}

// Bounds of the trends.
const (
	// MaxTrendBuckets bounds the intervals of one answer.
	MaxTrendBuckets = 60
	// DefaultTrendSpan is the span shown when no window is given.
	DefaultTrendSpan = 7 * 24 * time.Hour
)

// trendSteps are the intervals a window is cut into: the smallest giving at
// most MaxTrendBuckets buckets.
var trendSteps = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// TrendStep is the interval of a window (0: DefaultTrendSpan).
func TrendStep(window time.Duration) time.Duration {
	if window <= 0 {
		window = DefaultTrendSpan
	}
	for _, s := range trendSteps {
		if window <= s*MaxTrendBuckets {
			return s
		}
	}
	last := trendSteps[len(trendSteps)-1]
	return (window/MaxTrendBuckets + last - 1) / last * last
}

// Severities are the Alert severities in display order.
var Severities = []v1.Severity{v1.SeverityP0, v1.SeverityP1, v1.SeverityP2, v1.SeverityP3, v1.SeverityP4}

// BuildTrends cuts the window ending at now into intervals and counts into
// them. source names where in came from ("mirror" or "cluster").
func BuildTrends(in TrendInput, namespace, source string, window time.Duration, now time.Time) Trends {
	span := window
	if span <= 0 {
		span = DefaultTrendSpan
	}
	step := TrendStep(window)
	end := now.UTC().Truncate(step).Add(step) // the last bucket holds now
	n := int((span + step - 1) / step)
	start := end.Add(-time.Duration(n) * step)
	t := Trends{
		Namespace: namespace, WindowMinutes: int64(window / time.Minute), IntervalSeconds: int64(step / time.Second),
		GeneratedAt: now.UTC(), Source: source, Buckets: make([]time.Time, n),
		NewAlerts: map[string][]int64{}, Occurrences: map[string][]int64{}, Gates: []GateTrend{},
	}
	for i := range t.Buckets {
		t.Buckets[i] = start.Add(time.Duration(i) * step)
	}
	for _, p := range Phases {
		t.NewAlerts[string(p)] = make([]int64, n)
	}
	for _, s := range Severities {
		t.Occurrences[string(s)] = make([]int64, n)
	}
	bucket := func(at time.Time) int {
		if at.Before(start) || !at.Before(end) {
			return -1
		}
		return int(at.Sub(start) / step)
	}
	var acks []time.Duration
	for i := range in.Alerts {
		a := &in.Alerts[i]
		if a.Status.Phase == "" {
			continue // not decided yet: counted once the controller has
		}
		created := a.CreationTimestamp.Time
		if b := bucket(created); b >= 0 {
			t.NewAlerts[string(a.Status.Phase)][b]++
		}
		if a.Status.Phase != v1.AlertDeduplicated {
			if series, ok := t.Occurrences[string(a.Spec.Severity)]; ok {
				spread(series, a, bucket, start, step)
			}
		}
		if ack := a.Status.Ack; ack != nil && !ack.At.IsZero() && !ack.At.Time.Before(now.Add(-span)) && !ack.At.Time.Before(created) {
			acks = append(acks, ack.At.Sub(created))
		}
	}
	t.MTTA = summarise(acks)
	var repairs []time.Duration
	for i := range in.Incidents {
		inc := &in.Incidents[i]
		opened, resolved := incidentOpened(inc), incidentResolved(inc)
		if resolved == nil || resolved.Before(now.Add(-span)) || resolved.Before(opened) {
			continue
		}
		repairs = append(repairs, resolved.Sub(opened))
	}
	t.MTTR = summarise(repairs)
	t.Gates = gateTrends(in.Evaluations, in.Policies, now.Add(-span))
	return t
}

// spread puts a's occurrences into the buckets of series: one at its first
// occurrence, one at its last, the rest evenly over the buckets between
// (earlier buckets take the remainder). Occurrences outside the window are
// dropped.
func spread(series []int64, a *v1.Alert, bucket func(time.Time) int, start time.Time, step time.Duration) {
	occ := a.Status.Occurrences
	if occ <= 0 {
		return
	}
	first := a.CreationTimestamp.Time
	if a.Status.FirstSeenAt != nil && !a.Status.FirstSeenAt.IsZero() {
		first = a.Status.FirstSeenAt.Time
	}
	last := LastSeen(a)
	if last.Before(first) {
		last = first
	}
	add := func(at time.Time, k int64) {
		if b := bucket(at); b >= 0 {
			series[b] += k
		}
	}
	add(first, 1)
	if occ == 1 {
		return
	}
	add(last, 1)
	rest := occ - 2
	if rest == 0 {
		return
	}
	// The buckets from first's to last's, counted even outside the window
	// so that the share inside it stays right.
	fb := floorDiv(first.Sub(start), step)
	lb := floorDiv(last.Sub(start), step)
	k := lb - fb + 1
	each, extra := rest/k, rest%k
	for i := int64(0); i < k; i++ {
		v := each
		if i < extra {
			v++
		}
		if b := fb + i; b >= 0 && b < int64(len(series)) && v > 0 {
			series[b] += v
		}
	}
}

func incidentOpened(inc *v1.Incident) time.Time {
	if inc.Status.OpenedAt != nil && !inc.Status.OpenedAt.IsZero() {
		return inc.Status.OpenedAt.Time
	}
	return inc.CreationTimestamp.Time
}

// incidentResolved is when an Incident was resolved: resolvedAt, else (closed
// without passing Resolved) closedAt.
func incidentResolved(inc *v1.Incident) *time.Time {
	for _, t := range []*time.Time{timeOf(inc.Status.ResolvedAt), timeOf(inc.Status.ClosedAt)} {
		if t != nil {
			return t
		}
	}
	return nil
}

func summarise(ds []time.Duration) Duration {
	if len(ds) == 0 {
		return Duration{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	median := ds[len(ds)/2]
	if len(ds)%2 == 0 {
		median = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	return Duration{
		Count: int64(len(ds)), MeanSeconds: int64((sum / time.Duration(len(ds))).Round(time.Second) / time.Second),
		MedianSeconds: int64(median.Round(time.Second) / time.Second), MaxSeconds: int64(ds[len(ds)-1].Round(time.Second) / time.Second),
	}
}

// gateTrends are the decisions of each policy since from: the recorded
// evaluations, then the decision its status holds now (since gate.since,
// or the window's start when it has held longer). A decision equal to the
// one before it is not repeated.
func gateTrends(evals []GateEvaluation, policies []v1.SLOPolicy, from time.Time) []GateTrend {
	byKey := map[string]*GateTrend{}
	get := func(ns, name, service, env string) *GateTrend {
		k := ns + "/" + name
		g := byKey[k]
		if g == nil {
			g = &GateTrend{Namespace: ns, Name: name, Service: service, Env: env, Points: []GatePoint{}}
			byKey[k] = g
		}
		return g
	}
	slices.SortStableFunc(evals, func(a, b GateEvaluation) int { return a.At.Compare(b.At) })
	for _, e := range evals {
		if e.At.Before(from) || e.Decision == "" {
			continue
		}
		g := get(e.Namespace, e.Name, e.Service, e.Env)
		g.Points = appendPoint(g.Points, GatePoint{At: e.At.UTC(), Decision: e.Decision, Reason: e.Reason})
	}
	for i := range policies {
		p := &policies[i]
		g := get(p.Namespace, p.Name, p.Spec.Service, p.Spec.Env)
		st := p.Status.Gate
		if st == nil || st.Decision == "" {
			continue
		}
		at := from
		if st.Since != nil && st.Since.After(from) {
			at = st.Since.Time
		}
		if n := len(g.Points); n > 0 && g.Points[n-1].At.After(at) {
			at = g.Points[n-1].At
		}
		g.Points = appendPoint(g.Points, GatePoint{At: at.UTC(), Decision: string(st.Decision), Reason: st.Reason})
	}
	out := make([]GateTrend, 0, len(byKey))
	for _, g := range byKey {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b GateTrend) int { return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return out
}

func appendPoint(ps []GatePoint, p GatePoint) []GatePoint {
	if n := len(ps); n > 0 && ps[n-1].Decision == p.Decision && ps[n-1].Reason == p.Reason {
		return ps
	}
	return append(ps, p)
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	return &t.Time
}

// floorDiv is d/step rounded down (also for d < 0).
func floorDiv(d, step time.Duration) int64 {
	q := d / step
	if d%step < 0 {
		q--
	}
	return int64(q)
}
