package incident

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)

func alert(host string, labels map[string]string) *v1.Alert {
	a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "a-" + host}, Spec: v1.AlertSpec{Service: "gateway", Kind: "latency", Labels: labels}}
	return a
}

func TestSignature(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a      *v1.Alert
		labels []string
		want   string
	}{
		{"hosts meet in one signature", alert("h1", map[string]string{"host": "h1"}), nil, "gateway/prod/latency"},
		{"chosen labels are added sorted", alert("h1", map[string]string{"route": "/v1", "region": "eu", "host": "h1"}),
			[]string{"route", "region", "route"}, "gateway/prod/latency/region=eu/route=/v1"},
		{"absent chosen labels are skipped", alert("h1", nil), []string{"route"}, "gateway/prod/latency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Signature(tc.a, tc.labels); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	long := alert("x", map[string]string{"route": strings.Repeat("r", 300)})
	if s := Signature(long, []string{"route"}); len(s) > maxSignature {
		t.Fatalf("signature of %d characters exceeds the CRD bound", len(s))
	}
}

func TestCapSeverity(t *testing.T) {
	for _, tc := range []struct{ s, cap, want v1.Severity }{
		{v1.SeverityP0, v1.SeverityP1, v1.SeverityP1},
		{v1.SeverityP1, v1.SeverityP1, v1.SeverityP1},
		{v1.SeverityP3, v1.SeverityP1, v1.SeverityP3},
		{v1.SeverityP0, "", v1.SeverityP0},
	} {
		if got := CapSeverity(tc.s, tc.cap); got != tc.want {
			t.Errorf("CapSeverity(%s, %s) = %s, want %s", tc.s, tc.cap, got, tc.want)
		}
	}
}

func TestNamesAreDeterministicAndBounded(t *testing.T) {
	// Pinned: another naming scheme would stop finding existing Incidents.
	const want = "inc-a182670b9f59cb17-1"
	if got := Name("gateway/prod/latency", 1); got != want || Name("a", 1) == Name("a", 2) || Name("a", 1) == Name("b", 1) {
		t.Fatal("names must be a function of signature and seq")
	}
	long := strings.Repeat("x", 250)
	if n := RunName(long, 123); len(n) > 63 || RunName(long, 123) == RunName(long, 124) {
		t.Fatalf("run name %q: too long or not unique", n)
	}
}

func openIncident(cooldown time.Duration) *v1.Incident {
	inc := &v1.Incident{ObjectMeta: metav1.ObjectMeta{Name: "inc"}, Spec: v1.IncidentSpec{State: v1.IncidentOpen, Severity: v1.SeverityP1}}
	ApplyOpen(inc, t0, cooldown, "first", nil)
	return inc
}

func TestCooldown(t *testing.T) {
	inc := openIncident(15 * time.Minute)
	if inc.Status.Triage.Runs != 1 || inc.Status.AlertCount != 1 {
		t.Fatalf("open: want one run and one alert, got %+v", inc.Status)
	}
	if _, triaged := ApplyAppend(inc, "second", t0.Add(14*time.Minute), 15*time.Minute); triaged {
		t.Fatal("append inside the cooldown must not triage")
	}
	if appended, _ := ApplyAppend(inc, "second", t0.Add(14*time.Minute), 15*time.Minute); appended {
		t.Fatal("appending an Alert twice must change nothing")
	}
	if _, triaged := ApplyAppend(inc, "third", t0.Add(15*time.Minute), 15*time.Minute); !triaged {
		t.Fatal("append at the end of the cooldown must triage")
	}
	if inc.Status.Triage.Runs != 2 || inc.Status.Triage.LastRunAlertRef != "third" || inc.Status.Triage.LastRunRef.Name != "inc-triage-2" {
		t.Fatalf("second run not recorded: %+v", inc.Status.Triage)
	}

	inherited := &v1.TriageStatus{LastTriageAt: &metav1.Time{Time: t0}, CooldownUntil: &metav1.Time{Time: t0.Add(time.Minute)}}
	next := &v1.Incident{ObjectMeta: metav1.ObjectMeta{Name: "next"}, Spec: v1.IncidentSpec{State: v1.IncidentOpen}}
	if ApplyOpen(next, t0.Add(30*time.Second), time.Hour, "x", inherited) {
		t.Fatal("a new Incident inside the inherited cooldown must not triage")
	}
	if !next.Status.Triage.CooldownUntil.Equal(inherited.CooldownUntil) || next.Status.Triage.Runs != 0 {
		t.Fatalf("cooldown not inherited: %+v", next.Status.Triage)
	}
}

func TestAlertRefsAreBoundedAndCountExact(t *testing.T) {
	inc := openIncident(time.Hour)
	for i := range 250 {
		ApplyAppend(inc, fmt.Sprintf("a%d", i), t0.Add(time.Second), time.Hour)
	}
	if len(inc.Status.AlertRefs) != MaxAlertRefs || inc.Status.AlertCount != 251 || inc.Status.AlertRefs[MaxAlertRefs-1] != "a249" {
		t.Fatalf("got %d refs, count %d, newest %s", len(inc.Status.AlertRefs), inc.Status.AlertCount, inc.Status.AlertRefs[MaxAlertRefs-1])
	}
}

func TestTrim(t *testing.T) {
	build := func(n int, mirrored int64) *v1.Incident {
		inc := &v1.Incident{}
		for range n {
			AddEntry(inc, t0, v1.TimelineNote, "n", "")
		}
		inc.Status.MirroredTimelineSeq = mirrored
		return inc
	}
	off := build(150, 0)
	Trim(off, false)
	if len(off.Status.Timeline) != MaxTimeline || off.Status.Timeline[0].Seq != 51 {
		t.Fatalf("mirror off: want the newest 100 (from seq 51), got %d from %d", len(off.Status.Timeline), off.Status.Timeline[0].Seq)
	}
	on := build(150, 20)
	Trim(on, true)
	if len(on.Status.Timeline) != 130 || on.Status.Timeline[0].Seq != 21 {
		t.Fatalf("mirror on: only mirrored entries may go, got %d from %d", len(on.Status.Timeline), on.Status.Timeline[0].Seq)
	}
	done := build(150, 150)
	Trim(done, true)
	if len(done.Status.Timeline) != MaxTimeline {
		t.Fatalf("mirror on and caught up: want 100, got %d", len(done.Status.Timeline))
	}
}

func TestStateTransitions(t *testing.T) {
	inc := openIncident(time.Hour)
	for i, s := range []v1.IncidentState{v1.IncidentMitigating, v1.IncidentResolved, v1.IncidentOpen, v1.IncidentClosed} {
		inc.Spec.State = s
		if from := ApplyState(inc, t0.Add(time.Duration(i+1)*time.Minute)); from == "" {
			t.Fatalf("transition to %s not recorded", s)
		}
		if ApplyState(inc, t0) != "" {
			t.Fatal("recording twice must change nothing")
		}
	}
	if inc.Status.ResolvedAt != nil || inc.Status.ClosedAt == nil || inc.Status.Timeline[len(inc.Status.Timeline)-1].Type != v1.TimelineClosed {
		t.Fatalf("unexpected status after reopen and close: %+v", inc.Status)
	}
}

func TestDeletableAt(t *testing.T) {
	inc := openIncident(time.Hour)
	if !DeletableAt(inc, time.Minute).IsZero() {
		t.Fatal("an open Incident is never deletable")
	}
	inc.Spec.State = v1.IncidentClosed
	ApplyState(inc, t0.Add(time.Minute))
	if got := DeletableAt(inc, time.Minute); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("a Closed Incident stays until its cooldown ends: got %s", got)
	}
	if got := DeletableAt(inc, 24*time.Hour); !got.Equal(t0.Add(time.Minute + 24*time.Hour)) {
		t.Fatalf("retention after close: got %s", got)
	}
}

func TestBuildJobRunsOnlyAsTheGivenServiceAccount(t *testing.T) {
	tmpl := &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		ServiceAccountName: "admin", DeprecatedServiceAccount: "admin",
		Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "KEEP", Value: "1"}}}},
	}}}}
	job := BuildJob(tmpl, &Run{Run: "inc-triage-1", Namespace: "ns", Incident: "inc", Signature: "s", Alert: "a"}, "triage")
	pod := job.Spec.Template.Spec
	if job.Name != "inc-triage-1" || pod.ServiceAccountName != "triage" || pod.DeprecatedServiceAccount != "" {
		t.Fatalf("got %s as %s/%s", job.Name, pod.ServiceAccountName, pod.DeprecatedServiceAccount)
	}
	if len(pod.Containers[0].Env) != 6 || tmpl.Spec.Template.Spec.Containers[0].Env[0].Name != "KEEP" || len(tmpl.Spec.Template.Spec.Containers[0].Env) != 1 {
		t.Fatalf("env not added, or the template was modified: %+v", pod.Containers[0].Env)
	}
}

func TestPostWebhook(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := calls.Add(1); {
		case strings.HasSuffix(r.URL.Path, "/bad"):
			w.WriteHeader(http.StatusBadRequest)
		case n < 3:
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	run := &Run{Run: "r"}
	if err := PostWebhook(context.Background(), srv.Client(), srv.URL+"/ok", "", run, time.Millisecond); err != nil || calls.Load() != 3 {
		t.Fatalf("want success on the third attempt, got %v after %d", err, calls.Load())
	}
	calls.Store(10)
	if err := PostWebhook(context.Background(), srv.Client(), srv.URL+"/bad", "", run, time.Millisecond); err == nil || calls.Load() != 11 {
		t.Fatalf("a 400 is not retried: %v after %d", err, calls.Load()-10)
	}
}

func TestPostmortem(t *testing.T) {
	inc := openIncident(time.Hour)
	inc.Spec.Title, inc.Spec.Note = "p95 above 300ms", "rolled back"
	ApplyAppend(inc, "second", t0.Add(time.Minute), time.Hour)
	inc.Spec.State = v1.IncidentClosed
	ApplyState(inc, t0.Add(42*time.Minute))
	md := Postmortem(inc)
	for _, want := range []string{"# Postmortem draft: p95 above 300ms", "| Closing note | rolled back |", "Open for: 42m0s",
		"## Linked alerts (2)", "- `second`", "Runs: 1", "TriageStarted"} {
		if !strings.Contains(md, want) {
			t.Errorf("postmortem lacks %q:\n%s", want, md)
		}
	}
}

// BenchmarkAppendAtBound measures an append to an Incident whose alertRefs
// and timeline are at their bounds (the steady state of a storm), against
// BenchmarkAppendFresh, an append to a new Incident.
func BenchmarkAppendAtBound(b *testing.B) {
	inc := openIncident(time.Hour)
	for i := range MaxTimeline + 10 {
		ApplyAppend(inc, fmt.Sprintf("warm-%d", i), t0, time.Hour)
		Trim(inc, false)
	}
	names := make([]string, b.N)
	for i := range names {
		names[i] = fmt.Sprintf("a-%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := inc.DeepCopy() // each write starts from a fresh read
		ApplyAppend(c, names[i], t0, time.Hour)
		Trim(c, false)
	}
}

func BenchmarkAppendFresh(b *testing.B) {
	inc := openIncident(time.Hour)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := inc.DeepCopy()
		ApplyAppend(c, "a", t0, time.Hour)
		Trim(c, false)
	}
}
