package slo

import (
	"errors"
	"math"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func meas(t *testing.T, f float64) Measurement {
	t.Helper()
	m, err := FromFloat(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func objectives(t *testing.T, latencyMs int64, errPct string) Objectives {
	t.Helper()
	o := v1.SLOObjectives{}
	if latencyMs > 0 {
		o.LatencyP95Ms = ptr.To(latencyMs)
	}
	if errPct != "" {
		o.ErrorRatePercent = ptr.To(errPct)
	}
	obj, err := ParseObjectives(o)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestDecide(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name       string
		mode       v1.GateMode
		noData     v1.NoDataPolicy
		latencyMs  int64
		errPct     string
		latency    float64
		errRate    float64
		sourceErr  error
		incident   *OpenIncident
		bypass     bool
		want       v1.GateDecision
		wantReason string
		wantMet    metav1.ConditionStatus
		wantObsLat string
		wantObsErr string
	}{
		{name: "within", latencyMs: 300, errPct: "1.0", latency: 0.2, errRate: 0.005, want: v1.DecisionAllow, wantReason: v1.ReasonWithinObjectives, wantMet: metav1.ConditionTrue, wantObsLat: "200", wantObsErr: "0.5"},
		{name: "latency exactly at objective (0.3s = 300ms, not 299.999…)", latencyMs: 300, latency: 0.3, want: v1.DecisionAllow, wantReason: v1.ReasonWithinObjectives, wantMet: metav1.ConditionTrue, wantObsLat: "300"},
		{name: "latency one microsecond over", latencyMs: 300, latency: 0.300001, want: v1.DecisionBlock, wantReason: v1.ReasonLatencyP95Exceeded, wantMet: metav1.ConditionFalse, wantObsLat: "300.001"},
		{name: "error rate exactly at decimal objective 1.1% (0.011, a float that is not 1.1/100)", errPct: "1.1", errRate: 0.011, want: v1.DecisionAllow, wantReason: v1.ReasonWithinObjectives, wantMet: metav1.ConditionTrue, wantObsErr: "1.1"},
		{name: "error rate over a six-digit decimal objective", errPct: "0.000001", errRate: 0.0000000100001, want: v1.DecisionBlock, wantReason: v1.ReasonErrorRateExceeded, wantMet: metav1.ConditionFalse, wantObsErr: "0.000001"},
		{name: "error rate objective 100 never breached by ratio 1", errPct: "100", errRate: 1, want: v1.DecisionAllow, wantReason: v1.ReasonWithinObjectives, wantMet: metav1.ConditionTrue, wantObsErr: "100"},
		{name: "both breached: latency reason first", latencyMs: 100, errPct: "1", latency: 1, errRate: 0.5, want: v1.DecisionBlock, wantReason: v1.ReasonLatencyP95Exceeded, wantMet: metav1.ConditionFalse, wantObsLat: "1000", wantObsErr: "50"},
		{name: "+Inf latency breaches", latencyMs: 300, latency: math.Inf(1), want: v1.DecisionBlock, wantReason: v1.ReasonLatencyP95Exceeded, wantMet: metav1.ConditionFalse, wantObsLat: "+Inf"},
		{name: "NaN with noData Block", latencyMs: 300, latency: nan, want: v1.DecisionBlock, wantReason: v1.ReasonNoData, wantMet: metav1.ConditionUnknown},
		{name: "NaN with noData Allow", noData: v1.NoDataAllow, latencyMs: 300, latency: nan, want: v1.DecisionAllow, wantReason: v1.ReasonNoData, wantMet: metav1.ConditionUnknown},
		{name: "breach beats no data", latencyMs: 300, errPct: "1", latency: nan, errRate: 0.5, want: v1.DecisionBlock, wantReason: v1.ReasonErrorRateExceeded, wantMet: metav1.ConditionFalse, wantObsErr: "50"},
		{name: "unreachable in Strict", latencyMs: 300, sourceErr: errors.New("dial tcp: connection refused"), want: v1.DecisionBlock, wantReason: v1.ReasonSourceUnavailable, wantMet: metav1.ConditionUnknown},
		{name: "unreachable in Warn", mode: v1.GateWarn, latencyMs: 300, sourceErr: errors.New("boom"), want: v1.DecisionWarn, wantReason: v1.ReasonSourceUnavailable, wantMet: metav1.ConditionUnknown},
		{name: "breach in Warn allows with the reason", mode: v1.GateWarn, latencyMs: 300, latency: 1, want: v1.DecisionWarn, wantReason: v1.ReasonLatencyP95Exceeded, wantMet: metav1.ConditionFalse, wantObsLat: "1000"},
		{name: "breach in Off allows", mode: v1.GateOff, latencyMs: 300, latency: 1, want: v1.DecisionAllow, wantReason: v1.ReasonLatencyP95Exceeded, wantMet: metav1.ConditionFalse, wantObsLat: "1000"},
		{name: "open incident blocks a healthy SLO", latencyMs: 300, latency: 0.1, incident: &OpenIncident{Name: "inc-1", Severity: v1.SeverityP1}, want: v1.DecisionBlock, wantReason: v1.ReasonOpenIncident, wantMet: metav1.ConditionTrue, wantObsLat: "100"},
		{name: "bypass allows a breach", latencyMs: 300, latency: 1, bypass: true, want: v1.DecisionAllow, wantReason: v1.ReasonBypassed, wantMet: metav1.ConditionFalse, wantObsLat: "1000"},
		{name: "bypass leaves a healthy gate alone", latencyMs: 300, latency: 0.1, bypass: true, want: v1.DecisionAllow, wantReason: v1.ReasonWithinObjectives, wantMet: metav1.ConditionTrue, wantObsLat: "100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{
				Mode: cmpOr(tc.mode, v1.GateStrict), NoData: cmpOr(tc.noData, v1.NoDataBlock),
				Objectives: objectives(t, tc.latencyMs, tc.errPct),
				Observed:   Observation{SourceErr: tc.sourceErr},
				Incident:   tc.incident, BypassActive: tc.bypass,
			}
			if tc.sourceErr == nil {
				in.Observed.Latency, in.Observed.ErrorRate = meas(t, tc.latency), meas(t, tc.errRate)
			}
			got := Decide(in)
			if got.Decision != tc.want || got.Reason != tc.wantReason || got.SLOMet != tc.wantMet {
				t.Fatalf("got %s/%s SLOMet=%s (%q), want %s/%s SLOMet=%s", got.Decision, got.Reason, got.SLOMet, got.Message, tc.want, tc.wantReason, tc.wantMet)
			}
			if got.ObservedLatencyP95Ms != tc.wantObsLat || got.ObservedErrorRatePercent != tc.wantObsErr {
				t.Fatalf("observed %q/%q, want %q/%q", got.ObservedLatencyP95Ms, got.ObservedErrorRatePercent, tc.wantObsLat, tc.wantObsErr)
			}
			if got.Message == "" {
				t.Fatal("empty message")
			}
		})
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func TestResolveBypass(t *testing.T) {
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)
	req := &BypassRequest{Until: now.Add(48 * time.Hour), Reason: "hotfix", By: "alice"}
	got := ResolveBypass(req, nil, 24*time.Hour, now)
	if !got.Active || !got.Until.Equal(&metav1.Time{Time: now.Add(24 * time.Hour)}) {
		t.Fatalf("48h request under a 24h cap: got %+v", got)
	}
	// Seen again later: the cap is where it was, not 24h from now.
	later := ResolveBypass(req, got, 24*time.Hour, now.Add(23*time.Hour))
	if !later.Active || !later.Until.Equal(got.Until) {
		t.Fatalf("cap moved: %+v", later)
	}
	expired := ResolveBypass(req, later, 24*time.Hour, now.Add(24*time.Hour))
	if expired.Active {
		t.Fatalf("bypass still active at its end: %+v", expired)
	}
	// Still there a day later: the same request stays ended, never re-capped.
	if again := ResolveBypass(req, expired, 24*time.Hour, now.Add(25*time.Hour)); again.Active {
		t.Fatalf("an ended bypass came back: %+v", again)
	}
	// A new `slo bypass` (a new until) with the same reason is a new bypass.
	renewed := &BypassRequest{Until: now.Add(27 * time.Hour), Reason: "hotfix", By: "alice"}
	if r := ResolveBypass(renewed, expired, 24*time.Hour, now.Add(25*time.Hour)); !r.Active || !r.Until.Time.Equal(now.Add(27*time.Hour)) {
		t.Fatalf("a renewed bypass: %+v", r)
	}
	cleared := ResolveBypass(nil, got, 24*time.Hour, now.Add(time.Hour))
	if cleared.Active || cleared.Reason != "hotfix" {
		t.Fatalf("cleared bypass: %+v", cleared)
	}
	if ResolveBypass(nil, nil, time.Hour, now) != nil {
		t.Fatal("no bypass should give nil")
	}
}

func TestParseBypass(t *testing.T) {
	if b, err := ParseBypass(map[string]string{"x": "y"}); b != nil || err != nil {
		t.Fatalf("no annotations: %v %v", b, err)
	}
	if _, err := ParseBypass(map[string]string{v1.BypassUntilAnnotation: "2026-11-27T18:00:00Z"}); err == nil {
		t.Fatal("a bypass without a reason was accepted")
	}
	if _, err := ParseBypass(map[string]string{v1.BypassUntilAnnotation: "tomorrow", v1.BypassReasonAnnotation: "r"}); err == nil {
		t.Fatal("a bad until was accepted")
	}
	b, err := ParseBypass(map[string]string{v1.BypassUntilAnnotation: "2026-11-27T18:00:00Z", v1.BypassReasonAnnotation: "INC-42", v1.BypassByAnnotation: "alice"})
	if err != nil || b.Reason != "INC-42" || b.By != "alice" || b.Until.Hour() != 18 {
		t.Fatalf("got %+v %v", b, err)
	}
}

func TestEffective(t *testing.T) {
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)
	policy := func(mode v1.GateMode, evaluatedAgo time.Duration, decision v1.GateDecision, reason string) *v1.SLOPolicy {
		return testbuild.MakeSLOPolicy("gw", "").GateMode(mode).EvaluationInterval(15*time.Second).
			LastEvaluated(now.Add(-evaluatedAgo)).Gate(decision, reason).Obj()
	}
	cases := []struct {
		name string
		p    *v1.SLOPolicy
		want v1.GateDecision
		rsn  string
	}{
		{"fresh allow", policy(v1.GateStrict, 45*time.Second, v1.DecisionAllow, v1.ReasonWithinObjectives), v1.DecisionAllow, v1.ReasonWithinObjectives},
		{"stale strict blocks", policy(v1.GateStrict, 46*time.Second, v1.DecisionAllow, v1.ReasonWithinObjectives), v1.DecisionBlock, v1.ReasonStale},
		{"stale warn warns", policy(v1.GateWarn, time.Hour, v1.DecisionAllow, v1.ReasonWithinObjectives), v1.DecisionWarn, v1.ReasonStale},
		{"stale off allows", policy(v1.GateOff, time.Hour, v1.DecisionAllow, v1.ReasonWithinObjectives), v1.DecisionAllow, v1.ReasonStale},
		{"never evaluated", &v1.SLOPolicy{}, v1.DecisionBlock, v1.ReasonStale},
		{"expired bypass not yet re-evaluated", func() *v1.SLOPolicy {
			p := policy(v1.GateStrict, time.Second, v1.DecisionAllow, v1.ReasonBypassed)
			p.Status.Bypass = &v1.BypassStatus{Active: true, Until: &metav1.Time{Time: now.Add(-time.Second)}}
			return p
		}(), v1.DecisionBlock, v1.ReasonStale},
		{"live bypass survives staleness", func() *v1.SLOPolicy {
			p := policy(v1.GateStrict, time.Hour, v1.DecisionAllow, v1.ReasonBypassed)
			p.Status.Bypass = &v1.BypassStatus{Active: true, Until: &metav1.Time{Time: now.Add(time.Minute)}}
			return p
		}(), v1.DecisionAllow, v1.ReasonBypassed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Effective(tc.p, now)
			if got.Decision != tc.want || got.Reason != tc.rsn {
				t.Fatalf("got %s/%s (%s), want %s/%s", got.Decision, got.Reason, got.Message, tc.want, tc.rsn)
			}
		})
	}
}

func TestIntervalIsAtLeastTheCRDMinimum(t *testing.T) {
	for _, tc := range []struct {
		set  *metav1.Duration
		want time.Duration
	}{
		{nil, DefaultEvaluationInterval},
		{&metav1.Duration{Duration: time.Second}, MinEvaluationInterval}, // stored before the CRD's bound
		{&metav1.Duration{Duration: 15 * time.Second}, 15 * time.Second},
		{&metav1.Duration{Duration: 5 * time.Minute}, 5 * time.Minute},
	} {
		p := &v1.SLOPolicy{Spec: v1.SLOPolicySpec{EvaluationInterval: tc.set}}
		if got := Interval(p); got != tc.want {
			t.Errorf("evaluationInterval %v: got %s, want %s", tc.set, got, tc.want)
		}
	}
}
