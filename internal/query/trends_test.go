package query_test

import (
	"slices"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func TestTrendStep(t *testing.T) {
	for _, tc := range []struct {
		window time.Duration
		want   time.Duration
	}{
		{time.Hour, time.Minute},
		{4 * time.Hour, 5 * time.Minute},
		{24 * time.Hour, 30 * time.Minute},
		{7 * 24 * time.Hour, 3 * time.Hour},
		{0, 3 * time.Hour}, // no window: the last 7 days
		{365 * 24 * time.Hour, 7 * 24 * time.Hour},
	} {
		if got := query.TrendStep(tc.window); got != tc.want {
			t.Errorf("TrendStep(%s) = %s, want %s", tc.window, got, tc.want)
		}
		n := (max(tc.window, time.Duration(0)) + tc.want - 1) / tc.want
		if n > query.MaxTrendBuckets {
			t.Errorf("TrendStep(%s) gives %d buckets", tc.window, n)
		}
	}
}

func TestBuildTrends(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 30, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	// firing is an Alert of prod first seen (and created) created ago and
	// last seen last ago.
	firing := func(name string, sev v1.Severity, created, last time.Duration) *testbuild.AlertWrapper {
		return testbuild.MakeAlert(name, "prod").Env("prod").Severity(sev).Created(ago(created)).FirstSeen(ago(created)).LastSeen(ago(last))
	}
	acked := firing("acked", v1.SeverityP1, 30*time.Minute, 30*time.Minute).Phase(v1.AlertAcked).Occurrences(1).
		Ack("oncall-1", "", ago(20*time.Minute)).Val()
	acked2 := firing("acked2", v1.SeverityP1, 10*time.Minute, 10*time.Minute).Phase(v1.AlertAcked).Occurrences(1).
		Ack("oncall-1", "", ago(5*time.Minute)).Val()
	in := query.TrendInput{
		Alerts: []v1.Alert{
			// 12 occurrences from 10m ago to 1m ago: 1 + 1 + 10 over 10 buckets.
			firing("storm", v1.SeverityP2, 10*time.Minute, time.Minute).Phase(v1.AlertNew).Occurrences(12).Val(),
			firing("dup", v1.SeverityP2, 5*time.Minute, 5*time.Minute).Phase(v1.AlertDeduplicated).Occurrences(1).Val(),
			firing("undecided", v1.SeverityP2, 5*time.Minute, 5*time.Minute).Occurrences(1).Val(),
			firing("old", v1.SeverityP3, 3*time.Hour, 3*time.Hour).Phase(v1.AlertNew).Occurrences(1).Val(),
			acked, acked2,
		},
		Incidents: []v1.Incident{
			testbuild.MakeIncident("fixed", "").Created(ago(50 * time.Minute)).OpenedAt(ago(50 * time.Minute)).ResolvedAt(ago(10 * time.Minute)).Val(),
			testbuild.MakeIncident("closed", "").Created(ago(40 * time.Minute)).OpenedAt(ago(40 * time.Minute)).ClosedAt(ago(20 * time.Minute)).Val(),
			testbuild.MakeIncident("open", "").Created(ago(40 * time.Minute)).Val(),
			testbuild.MakeIncident("long-ago", "").Created(ago(5 * time.Hour)).ResolvedAt(ago(2 * time.Hour)).Val(),
		},
		Evaluations: []query.GateEvaluation{
			{Namespace: "prod", Name: "gw", Service: "gateway", Env: "prod", GatePoint: query.GatePoint{At: now.Add(-30 * time.Minute), Decision: "Allow"}},
			{Namespace: "prod", Name: "gw", Service: "gateway", Env: "prod", GatePoint: query.GatePoint{At: now.Add(-20 * time.Minute), Decision: "Allow"}},
			{Namespace: "prod", Name: "gw", Service: "gateway", Env: "prod", GatePoint: query.GatePoint{At: now.Add(-10 * time.Minute), Decision: "Block", Reason: "LatencyP95Exceeded"}},
			{Namespace: "prod", Name: "gw", Service: "gateway", Env: "prod", GatePoint: query.GatePoint{At: now.Add(-2 * time.Hour), Decision: "Warn"}},
		},
		Policies: []v1.SLOPolicy{
			testbuild.MakeSLOPolicy("gw", "prod").Env("prod").Gate(v1.DecisionBlock, "LatencyP95Exceeded").GateSince(ago(10 * time.Minute)).Val(),
			testbuild.MakeSLOPolicy("api", "prod").Service("api").Env("prod").Gate(v1.DecisionAllow, "WithinObjectives").GateSince(ago(30 * 24 * time.Hour)).Val(),
		},
	}
	tr := query.BuildTrends(in, "prod", "mirror", time.Hour, now)

	if tr.IntervalSeconds != 60 || len(tr.Buckets) != 60 {
		t.Fatalf("interval %ds, %d buckets", tr.IntervalSeconds, len(tr.Buckets))
	}
	if last := tr.Buckets[len(tr.Buckets)-1]; !last.Equal(now.Truncate(time.Minute)) {
		t.Fatalf("the last bucket starts at %s, want the minute of now", last)
	}
	sum := func(s []int64) (n int64) {
		for _, v := range s {
			n += v
		}
		return n
	}
	newCounts := map[string]int64{}
	for k, s := range tr.NewAlerts {
		newCounts[k] = sum(s)
	}
	want := map[string]int64{"New": 1, "Processing": 0, "Acked": 2, "Failed": 0, "Deduplicated": 1}
	for k, v := range want {
		if newCounts[k] != v {
			t.Errorf("new %s = %d, want %d (all: %v)", k, newCounts[k], v, newCounts)
		}
	}
	if got := sum(tr.Occurrences["P2"]); got != 12 {
		t.Errorf("P2 occurrences %d, want 12 (the duplicate's is in its canonical): %v", got, tr.Occurrences["P2"])
	}
	if got := sum(tr.Occurrences["P3"]); got != 0 {
		t.Errorf("P3 occurrences %d, want 0 (outside the window)", got)
	}
	// The storm's buckets: 10m ago .. 1m ago, each with at least one.
	p2 := tr.Occurrences["P2"]
	for i := len(p2) - 11; i <= len(p2)-2; i++ {
		if p2[i] == 0 {
			t.Errorf("bucket %d of the storm is empty: %v", i, p2[len(p2)-12:])
		}
	}
	if tr.MTTA != (query.Duration{Count: 2, MeanSeconds: 450, MedianSeconds: 450, MaxSeconds: 600}) {
		t.Errorf("MTTA %+v", tr.MTTA)
	}
	if tr.MTTR != (query.Duration{Count: 2, MeanSeconds: 1800, MedianSeconds: 1800, MaxSeconds: 2400}) {
		t.Errorf("MTTR %+v", tr.MTTR)
	}
	if len(tr.Gates) != 2 || tr.Gates[0].Name != "api" || tr.Gates[1].Name != "gw" {
		t.Fatalf("gates %+v", tr.Gates)
	}
	if got := tr.Gates[0].Points; len(got) != 1 || got[0].Decision != "Allow" || !got[0].At.Equal(now.Add(-time.Hour)) {
		t.Errorf("api: an Allow held since before the window starts at the window: %+v", got)
	}
	decisions := func(ps []query.GatePoint) (out []string) {
		for _, p := range ps {
			out = append(out, p.Decision)
		}
		return out
	}
	if got := decisions(tr.Gates[1].Points); !slices.Equal(got, []string{"Allow", "Block"}) {
		t.Errorf("gw: %v (the Warn is before the window, repeats fold)", tr.Gates[1].Points)
	}

	cluster := query.BuildTrends(query.TrendInput{Policies: in.Policies}, "prod", "cluster", time.Hour, now)
	if got := decisions(cluster.Gates[1].Points); !slices.Equal(got, []string{"Block"}) || !cluster.Gates[1].Points[0].At.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("cluster gw: %+v", cluster.Gates[1].Points)
	}
}
