package notify

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

var t0 = time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)

func receiver(typ v1.ReceiverType, events ...v1.NotificationEvent) *v1.Receiver {
	return testbuild.MakeReceiver("oncall", "prod").UID("rcv-uid").Created(t0.Add(-time.Hour)).
		Type(typ).URL("").Events(events...).GroupInterval(10 * time.Second).Obj()
}

func openIncident() *v1.Incident {
	return testbuild.MakeIncident("inc-1", "prod").UID("inc-uid").Env("prod").Severity(v1.SeverityP2).Title("p95 above 300ms").
		Signature("gateway/prod/latency").State(v1.IncidentOpen).OpenedAt(t0).ObservedState(v1.IncidentOpen).AlertCount(3).Obj()
}

// deliver runs the plan's entry as delivered at now and records it.
func deliver(t *testing.T, entries []v1.IncidentNotification, p Plan, now time.Time) []v1.IncidentNotification {
	t.Helper()
	if p.Entry == nil {
		t.Fatal("nothing planned")
	}
	e := *p.Entry
	RecordAttempt(&e.DeliveryAttempts, now, time.Second, Result{})
	return Upsert(entries, e, p.Superseded)
}

// TestPlanFollowsTheIncident: opened, severity raised, Mitigating,
// Resolved, Closed, each once, numbered, keyed, and spaced by the
// groupInterval.
func TestPlanFollowsTheIncident(t *testing.T) {
	r := receiver(v1.ReceiverWebhook)
	r.Spec.Events = nil // the API server's default: every Incident event
	inc := openIncident()
	var entries []v1.IncidentNotification
	now := t0

	p := PlanFor(inc, entries, r, now)
	if p.Entry == nil || p.Entry.Event != v1.NotifyOpened || p.Entry.Seq != 1 || !p.Due.Equal(now) {
		t.Fatalf("first plan: %+v", p)
	}
	if want := Key("inc-uid", "oncall", 1, v1.NotifyOpened); p.Entry.Key != want {
		t.Fatalf("key %q, want %q", p.Entry.Key, want)
	}
	entries = deliver(t, entries, p, now)
	if p := PlanFor(inc, entries, r, now); p.Entry != nil || p.Superseded != 0 {
		t.Fatalf("nothing more is owed: %+v", p)
	}

	steps := []struct {
		change func()
		event  v1.NotificationEvent
		state  v1.IncidentState
	}{
		{func() { inc.Spec.Severity = v1.SeverityP1 }, v1.NotifySeverityRaised, v1.IncidentOpen},
		{func() { inc.Spec.State = v1.IncidentMitigating }, v1.NotifyStateChanged, v1.IncidentMitigating},
		{func() { inc.Spec.State = v1.IncidentResolved }, v1.NotifyResolved, v1.IncidentResolved},
		{func() { inc.Spec.State = v1.IncidentOpen }, v1.NotifyStateChanged, v1.IncidentOpen},
		{func() { inc.Spec.State, inc.Spec.Note = v1.IncidentClosed, "false positive" }, v1.NotifyClosed, v1.IncidentClosed},
	}
	for i, s := range steps {
		s.change()
		p := PlanFor(inc, entries, r, now)
		if p.Entry == nil || p.Entry.Event != s.event || p.Entry.State != s.state || p.Entry.Seq != int32(i+2) {
			t.Fatalf("step %d: %+v", i, p.Entry)
		}
		if want := now.Add(10 * time.Second); !p.Due.Equal(want) {
			t.Fatalf("step %d: due %s, want the groupInterval after the last delivery (%s)", i, p.Due, want)
		}
		now = p.Due
		entries = deliver(t, entries, p, now)
	}
	if p := PlanFor(inc, entries, r, now.Add(time.Hour)); p.Entry != nil {
		t.Fatalf("a Closed Incident owes nothing more: %+v", p.Entry)
	}
}

// TestPlanCoalesces: a notification not delivered yet is replaced by one
// of the latest state; what is no longer news is dropped.
func TestPlanCoalesces(t *testing.T) {
	r := receiver(v1.ReceiverPagerDuty, v1.IncidentEvents...)
	inc := openIncident()
	p := PlanFor(inc, nil, r, t0)
	e := *p.Entry
	RecordAttempt(&e.DeliveryAttempts, t0, 2*time.Second, Result{Err: fmt.Errorf("down"), Retryable: true})
	entries := []v1.IncidentNotification{e}

	// Still open: the same notification, retried at its own time.
	p = PlanFor(inc, entries, r, t0.Add(time.Second))
	if p.Entry == nil || p.Entry.Key != e.Key || !p.Due.Equal(e.NextAttemptAt.Time) {
		t.Fatalf("retry: %+v", p)
	}
	// Resolved before it was delivered: nothing was ever announced, so
	// nothing is owed, and the pending one goes.
	inc.Spec.State = v1.IncidentResolved
	p = PlanFor(inc, entries, r, t0.Add(time.Second))
	if p.Entry != nil || p.Superseded != 1 {
		t.Fatalf("resolved before announced: %+v", p)
	}
	// Delivered opened, then Mitigating pending, then Resolved: one
	// resolve replaces the acknowledge, keeping its backoff.
	inc.Spec.State = v1.IncidentOpen
	entries = deliver(t, nil, PlanFor(inc, nil, r, t0), t0)
	inc.Spec.State = v1.IncidentMitigating
	p = PlanFor(inc, entries, r, t0.Add(time.Minute))
	ack := *p.Entry
	RecordAttempt(&ack.DeliveryAttempts, t0.Add(time.Minute), 30*time.Second, Result{Err: fmt.Errorf("down"), Retryable: true})
	entries = Upsert(entries, ack, 0)
	inc.Spec.State = v1.IncidentResolved
	p = PlanFor(inc, entries, r, t0.Add(time.Minute+time.Second))
	if p.Entry == nil || p.Entry.Event != v1.NotifyResolved || p.Entry.Seq != 3 || p.Superseded != 2 || !p.Due.Equal(ack.NextAttemptAt.Time) {
		t.Fatalf("resolve supersedes acknowledge: %+v due %s", p, p.Due)
	}
	entries = deliver(t, entries, p, p.Due)
	if len(entries) != 2 || entries[1].Event != v1.NotifyResolved {
		t.Fatalf("the acknowledge is replaced: %+v", entries)
	}
	// PagerDuty resolved the alert already: Closed sends nothing.
	inc.Spec.State, inc.Spec.Note = v1.IncidentClosed, "done"
	if p := PlanFor(inc, entries, r, t0.Add(time.Hour)); p.Entry != nil {
		t.Fatalf("closed after resolved, PagerDuty: %+v", p.Entry)
	}
}

func TestPlanFilters(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*v1.Receiver, *v1.Incident)
		want bool
	}{
		{"all", func(*v1.Receiver, *v1.Incident) {}, true},
		{"below minSeverity", func(r *v1.Receiver, _ *v1.Incident) { r.Spec.MinSeverity = v1.SeverityP1 }, false},
		{"at minSeverity", func(r *v1.Receiver, _ *v1.Incident) { r.Spec.MinSeverity = v1.SeverityP2 }, true},
		{"other service", func(r *v1.Receiver, _ *v1.Incident) { r.Spec.Services = []string{"checkout"} }, false},
		{"its service", func(r *v1.Receiver, _ *v1.Incident) { r.Spec.Services = []string{"checkout", "gateway"} }, true},
		{"other env", func(r *v1.Receiver, _ *v1.Incident) { r.Spec.Envs = []string{"staging"} }, false},
		{"opened before the Receiver existed", func(r *v1.Receiver, _ *v1.Incident) { r.CreationTimestamp = metav1.NewTime(t0.Add(time.Second)) }, false},
		{"not opened yet", func(_ *v1.Receiver, i *v1.Incident) { i.Status.OpenedAt = nil }, false},
		{"not subscribed to Opened", func(r *v1.Receiver, _ *v1.Incident) { r.Spec.Events = []v1.NotificationEvent{v1.NotifyResolved} }, false},
	} {
		r, inc := receiver(v1.ReceiverSlack, v1.IncidentEvents...), openIncident()
		tc.edit(r, inc)
		if got := PlanFor(inc, nil, r, t0).Entry != nil; got != tc.want {
			t.Errorf("%s: planned %v, want %v", tc.name, got, tc.want)
		}
	}
	// Not sent Opened, a Receiver still hears of the resolve.
	r, inc := receiver(v1.ReceiverSlack, v1.NotifyResolved), openIncident()
	inc.Spec.State = v1.IncidentResolved
	if p := PlanFor(inc, nil, r, t0); p.Entry == nil || p.Entry.Event != v1.NotifyResolved || p.Entry.Seq != 1 {
		t.Errorf("resolve without opened: %+v", p.Entry)
	}
	// Once announced, an Incident is followed whatever its severity.
	r, inc = receiver(v1.ReceiverSlack, v1.IncidentEvents...), openIncident()
	r.Spec.MinSeverity = v1.SeverityP2
	entries := deliver(t, nil, PlanFor(inc, nil, r, t0), t0)
	inc.Spec.Severity, inc.Spec.State = v1.SeverityP4, v1.IncidentResolved
	if p := PlanFor(inc, entries, r, t0.Add(time.Minute)); p.Entry == nil || p.Entry.Event != v1.NotifyResolved {
		t.Errorf("resolve below minSeverity after announcing: %+v", p.Entry)
	}
}

// TestGivenUpIsNotRetried: a notification given up stays so; a Receiver
// that never got the Incident hears nothing more of it, one that did hears
// of the next change.
func TestGivenUpIsNotRetried(t *testing.T) {
	r, inc := receiver(v1.ReceiverWebhook, v1.IncidentEvents...), openIncident()
	e := *PlanFor(inc, nil, r, t0).Entry
	RecordAttempt(&e.DeliveryAttempts, t0, time.Second, Result{Err: fmt.Errorf("webhook answered HTTP 400"), Retryable: false})
	entries := []v1.IncidentNotification{e}
	if !GivenUp(&entries[0].DeliveryAttempts) {
		t.Fatal("a 400 is not retried")
	}
	for _, s := range []v1.IncidentState{v1.IncidentOpen, v1.IncidentMitigating, v1.IncidentResolved} {
		inc.Spec.State = s
		if p := PlanFor(inc, entries, r, t0.Add(time.Hour)); p.Entry != nil {
			t.Fatalf("%s: never announced, nothing follows: %+v", s, p.Entry)
		}
	}

	inc.Spec.State = v1.IncidentOpen
	entries = deliver(t, nil, PlanFor(inc, nil, r, t0), t0)
	inc.Spec.State = v1.IncidentMitigating
	ack := *PlanFor(inc, entries, r, t0.Add(time.Minute)).Entry
	RecordAttempt(&ack.DeliveryAttempts, t0.Add(time.Minute), time.Second, Result{Err: fmt.Errorf("webhook answered HTTP 400"), Retryable: false})
	entries = Upsert(entries, ack, 0)
	if p := PlanFor(inc, entries, r, t0.Add(time.Hour)); p.Entry != nil {
		t.Fatalf("given up is not sent again: %+v", p.Entry)
	}
	inc.Spec.State = v1.IncidentResolved
	if p := PlanFor(inc, entries, r, t0.Add(time.Hour)); p.Entry == nil || p.Entry.Event != v1.NotifyResolved || p.Entry.Seq != 3 {
		t.Fatalf("the next change is announced: %+v", p.Entry)
	}
}

func TestBoundKeepsEachReceiversLatest(t *testing.T) {
	var entries []v1.IncidentNotification
	for i := range 40 {
		entries = append(entries, v1.IncidentNotification{Receiver: "busy", Seq: int32(i + 1), Key: fmt.Sprint(i),
			DeliveryAttempts: v1.DeliveryAttempts{DeliveredAt: &metav1.Time{Time: t0}}})
	}
	entries = append([]v1.IncidentNotification{
		{Receiver: "quiet", Seq: 1, Key: "q", DeliveryAttempts: v1.DeliveryAttempts{DeliveredAt: &metav1.Time{Time: t0}}},
		{Receiver: "down", Seq: 1, Key: "d", DeliveryAttempts: v1.DeliveryAttempts{NextAttemptAt: &metav1.Time{Time: t0}}},
	}, entries...)
	got := Bound(entries)
	if len(got) != MaxHistory {
		t.Fatalf("kept %d, want %d", len(got), MaxHistory)
	}
	if got[0].Receiver != "quiet" || got[1].Receiver != "down" || got[len(got)-1].Seq != 40 || got[2].Seq != 11 {
		t.Fatalf("kept %s %s %d..%d", got[0].Receiver, got[1].Receiver, got[2].Seq, got[len(got)-1].Seq)
	}
}

func TestRecordAttemptBacksOffAndGivesUp(t *testing.T) {
	var d v1.DeliveryAttempts
	busy := Result{Err: fmt.Errorf("webhook answered HTTP 503 (Service Unavailable)"), Retryable: true}
	now := t0
	for i := int32(1); i < Attempts; i++ {
		if RecordAttempt(&d, now, 2*time.Second, busy) {
			t.Fatalf("attempt %d: given up early", i)
		}
		if want := now.Add(Backoff(2*time.Second, i)); !d.NextAttemptAt.Equal(&metav1.Time{Time: want}) {
			t.Fatalf("attempt %d: next %s, want %s", i, d.NextAttemptAt, want)
		}
		now = d.NextAttemptAt.Time
	}
	if total := now.Sub(t0); total < time.Hour || total > 2*time.Hour {
		t.Fatalf("retries span %s, want about 80 minutes", total)
	}
	if !RecordAttempt(&d, now, 2*time.Second, busy) || !GivenUp(&d) || d.Attempts != Attempts {
		t.Fatalf("after %d attempts: %+v", Attempts, d)
	}
	// A Retry-After beyond the backoff wins.
	var r v1.DeliveryAttempts
	RecordAttempt(&r, t0, 2*time.Second, Result{Err: busy.Err, Retryable: true, RetryAfter: time.Minute})
	if !r.NextAttemptAt.Equal(&metav1.Time{Time: t0.Add(time.Minute)}) {
		t.Fatalf("Retry-After: %s", r.NextAttemptAt)
	}
}

func TestGatesLimitAndHoldBack(t *testing.T) {
	var g Gates
	r := receiver(v1.ReceiverSlack)
	r.Spec.RateLimit = v1.ReceiverRateLimit{PerMinute: 60, Burst: 2}
	first, second := g.Take(r, t0), g.Take(r, t0)
	if first != 0 || second != 0 {
		t.Fatal("the burst goes at once")
	}
	if d := g.Take(r, t0); d <= 0 || d > time.Second {
		t.Fatalf("third in the same instant waits about a second, got %s", d)
	}
	if g.Take(r, t0.Add(time.Second)) != 0 {
		t.Fatal("a token a second later")
	}
	g.Observe(r, t0.Add(time.Second), 2*time.Second, Result{Err: fmt.Errorf("down"), Retryable: true})
	if d := g.Take(r, t0.Add(2*time.Second)); d != time.Second {
		t.Fatalf("a failing receiver holds the rest back until its retry, got %s", d)
	}
	g.Observe(r, t0.Add(3*time.Second), 2*time.Second, Result{})
	if g.Take(r, t0.Add(10*time.Second)) != 0 {
		t.Fatal("released after a success")
	}
}

func TestGatesOnePostAtATimePerReceiver(t *testing.T) {
	var g Gates
	a, b := testbuild.MakeReceiver("a", "").UID("a").Obj(), testbuild.MakeReceiver("b", "").UID("b").Obj()
	now := time.Unix(1000, 0)
	if !g.Begin(a, now) {
		t.Fatal("an idle receiver is busy")
	}
	if g.Begin(a, now) {
		t.Fatal("a second POST to a receiver went on the wire beside the first")
	}
	if !g.Begin(b, now) {
		t.Fatal("a busy receiver holds up another")
	}
	g.End(a)
	if !g.Begin(a, now) {
		t.Fatal("a receiver stays busy after End")
	}
}

// TestOpenedWaitsForTheFirstAlert: a conversion creates the Incident and
// then appends its Alert; the Opened notification waits (OpenedGrace) for
// that Alert, so it does not announce an Incident of no Alerts, and goes
// out at once when the Alert is there.
func TestOpenedWaitsForTheFirstAlert(t *testing.T) {
	r := receiver(v1.ReceiverSlack)
	inc := openIncident()
	inc.CreationTimestamp = metav1.NewTime(t0)
	inc.Status.AlertCount = 0
	if p := PlanFor(inc, nil, r, t0.Add(time.Second)); p.Entry == nil || !p.Due.Equal(t0.Add(OpenedGrace)) {
		t.Fatalf("an Incident without Alerts is due %v, want %v (%+v)", p.Due, t0.Add(OpenedGrace), p)
	}
	inc.Status.AlertRefs, inc.Status.AlertCount = []string{"gateway-latency-x"}, 1
	if p := PlanFor(inc, nil, r, t0.Add(time.Second)); p.Entry == nil || !p.Due.Equal(t0.Add(time.Second)) {
		t.Fatalf("with its Alert it is due %v, want now (%+v)", p.Due, p)
	}
	// Created by hand, with no Alert ever: announced after the grace.
	inc.Status.AlertRefs, inc.Status.AlertCount = nil, 0
	if p := PlanFor(inc, nil, r, t0.Add(time.Minute)); p.Entry == nil || !p.Due.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after the grace it is due %v, want now (%+v)", p.Due, p)
	}
}
