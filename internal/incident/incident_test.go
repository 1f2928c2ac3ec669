package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

var t0 = time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)

func TestSignature(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a      *v1.Alert
		labels []string
		want   string
	}{
		{"hosts meet in one signature", testbuild.MakeAlert("a-h1", "").Host("h1").Obj(), nil, "gateway/prod/latency"},
		{"chosen labels are added sorted", testbuild.MakeAlert("a-h1", "").Labels("route", "/v1", "region", "eu", "host", "h1").Obj(),
			[]string{"route", "region", "route"}, "gateway/prod/latency/region=eu/route=/v1"},
		{"absent chosen labels are skipped", testbuild.MakeAlert("a-h1", "").Obj(), []string{"route"}, "gateway/prod/latency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Signature(tc.a, tc.labels); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	long := testbuild.MakeAlert("a-x", "").Labels("route", strings.Repeat("r", 300)).Obj()
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

// openIncident is an Incident a conversion made and the operator opened and
// triaged: the first Alert appended by a user, then the operator's open and
// triage decision.
func openIncident(cooldown time.Duration) *v1.Incident {
	inc := testbuild.MakeIncident("inc", "").State(v1.IncidentOpen).Severity(v1.SeverityP1).Obj()
	AppendAlert(inc, "first", t0, "olga")
	ApplyOpen(inc, t0, nil)
	ApplyTriage(inc, t0, cooldown, "first")
	Observe(inc, t0)
	return inc
}

func TestTriageIsTheOperatorsDecisionOnNewRefs(t *testing.T) {
	inc := openIncident(15 * time.Minute)
	tr := inc.Status.Triage
	if tr.Runs != 1 || tr.ObservedAlertCount != 1 || tr.LastRunRef.Name != "inc-triage-1" || tr.LastRunAlertRef != "first" || Unseen(inc) {
		t.Fatalf("open: want one run for the first Alert, all seen, got %+v", tr)
	}
	last := inc.Status.Timeline[len(inc.Status.Timeline)-1]
	if last.Type != v1.TimelineTriageStarted || last.Author != "" || last.AlertRef != "first" {
		t.Fatalf("the run's entry is the operator's: %+v", last)
	}

	AppendAlert(inc, "second", t0.Add(14*time.Minute), "olga")
	if !Unseen(inc) || !RefsUnseen(inc) || !slices.Equal(NewRefs(inc), []string{"second"}) {
		t.Fatalf("a new ref is unseen: %v", NewRefs(inc))
	}
	entries := len(inc.Status.Timeline)
	if ApplyTriage(inc, t0.Add(14*time.Minute), 15*time.Minute, "second") || inc.Status.Triage.Runs != 1 ||
		inc.Status.Triage.ObservedAlertCount != 2 || len(inc.Status.Timeline) != entries {
		t.Fatalf("inside the cooldown: no run and no entry, only the cursor: %+v", inc.Status.Triage)
	}

	AppendAlert(inc, "third", t0.Add(15*time.Minute), "olga")
	AppendAlert(inc, "fourth", t0.Add(15*time.Minute), "olga")
	if !slices.Equal(NewRefs(inc), []string{"third", "fourth"}) {
		t.Fatalf("new refs: %v", NewRefs(inc))
	}
	if ApplyTriage(inc, t0.Add(15*time.Minute), 15*time.Minute, "") || inc.Status.Triage.ObservedAlertCount != 4 {
		t.Fatal("no linked Alert among the new refs: no run, the cursor moves")
	}
	AppendAlert(inc, "fifth", t0.Add(15*time.Minute), "olga")
	if !ApplyTriage(inc, t0.Add(15*time.Minute), 15*time.Minute, "fifth") {
		t.Fatal("a linked Alert at the end of the cooldown must triage")
	}
	if tr := inc.Status.Triage; tr.Runs != 2 || tr.LastRunAlertRef != "fifth" || tr.LastRunRef.Name != "inc-triage-2" ||
		!tr.CooldownUntil.Time.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("second run not recorded: %+v", tr)
	}

	inc.Spec.State = v1.IncidentResolved
	AppendAlert(inc, "late", t0.Add(time.Hour), "olga")
	if ApplyTriage(inc, t0.Add(time.Hour), 15*time.Minute, "late") {
		t.Fatal("an Incident that is not open is not triaged")
	}

	inherited := &v1.TriageStatus{LastTriageAt: &metav1.Time{Time: t0}, CooldownUntil: &metav1.Time{Time: t0.Add(time.Minute)}}
	next := testbuild.MakeIncident("next", "").State(v1.IncidentOpen).Obj()
	AppendAlert(next, "x", t0.Add(30*time.Second), "olga")
	ApplyOpen(next, t0.Add(30*time.Second), inherited)
	if ApplyTriage(next, t0.Add(30*time.Second), time.Hour, "x") {
		t.Fatal("a new Incident inside the inherited cooldown must not triage")
	}
	if !next.Status.Triage.CooldownUntil.Equal(inherited.CooldownUntil) || next.Status.Triage.Runs != 0 ||
		!strings.Contains(next.Status.Timeline[1].Message, "(inherited)") {
		t.Fatalf("cooldown not inherited: %+v", next.Status.Triage)
	}
}

func TestAppendAlertIsWhatAUserMayWrite(t *testing.T) {
	inc := openIncident(time.Hour)
	before := inc.Status.DeepCopy()
	if !AppendAlert(inc, "second", t0.Add(time.Minute), "olga") {
		t.Fatal("a new Alert is appended")
	}
	e := inc.Status.Timeline[len(inc.Status.Timeline)-1]
	if e.Type != v1.TimelineAlertAppended || e.Author != "olga" || e.AlertRef != "second" || e.Seq != before.TimelineSeq+1 {
		t.Fatalf("entry: %+v", e)
	}
	// Only refs, count and timeline change: nothing the operator owns.
	after := inc.Status.DeepCopy()
	after.AlertRefs, after.AlertCount, after.Timeline, after.TimelineSeq = before.AlertRefs, before.AlertCount, before.Timeline, before.TimelineSeq
	if !equality.Semantic.DeepEqual(after, before) {
		t.Fatalf("an append changed more than refs, count and timeline: %+v", inc.Status)
	}
	if AppendAlert(inc, "second", t0.Add(time.Minute), "olga") {
		t.Fatal("appending an Alert twice must change nothing")
	}
	ApplyNote(inc, t0, "rolled back", "olga")
	if n := inc.Status.Timeline[len(inc.Status.Timeline)-1]; n.Message != "rolled back" || n.Author != "olga" {
		t.Fatalf("a note names its author beside the message: %+v", n)
	}
}

func TestAlertRefsAreBoundedAndCountExact(t *testing.T) {
	inc := openIncident(time.Hour)
	for i := range 250 {
		AppendAlert(inc, fmt.Sprintf("a%d", i), t0.Add(time.Second), "olga")
	}
	if len(inc.Status.AlertRefs) != MaxAlertRefs || inc.Status.AlertCount != 251 || inc.Status.AlertRefs[MaxAlertRefs-1] != "a249" {
		t.Fatalf("got %d refs, count %d, newest %s", len(inc.Status.AlertRefs), inc.Status.AlertCount, inc.Status.AlertRefs[MaxAlertRefs-1])
	}
	if refs := NewRefs(inc); len(refs) != MaxAlertRefs || refs[0] != "a150" {
		t.Fatalf("new refs are at most those alertRefs holds: %d from %s", len(refs), refs[0])
	}
}

// TestRecorded: an Alert is recorded when its ref or its AlertAppended
// entry is there; when the record is incomplete on both sides it cannot be
// told, and an Alert found linked counts as recorded so that finishing a
// conversion never counts it twice. A fresh link still appends.
func TestRecorded(t *testing.T) {
	inc := openIncident(time.Hour)
	if !Recorded(inc, "first") || Recorded(inc, "never") {
		t.Fatal("a complete record tells")
	}
	for i := range MaxAlertRefs {
		AppendAlert(inc, fmt.Sprintf("a%d", i), t0, "olga")
	}
	if Linked(inc, "first") || !Recorded(inc, "first") || Recorded(inc, "never") {
		t.Fatal("a ref dropped from alertRefs is still told by its entry")
	}
	Trim(inc, false)
	if !Recorded(inc, "first") || !Recorded(inc, "never") {
		t.Fatal("with both sides trimmed, an Alert found linked but not shown counts as recorded")
	}
	if Appended(inc, "never") || !AppendAlert(inc, "never", t0, "olga") || inc.Status.AlertCount != MaxAlertRefs+2 {
		t.Fatal("a conversion that has just linked an Alert appends it to an Incident of over 100 Alerts")
	}
}

// TestObserve: the operator's look moves lastActivityAt only for what others
// appended since the last one; an Incident from before the cursors is
// adopted as seen, triage included.
func TestObserve(t *testing.T) {
	inc := openIncident(time.Hour)
	if Unseen(inc) || !inc.Status.LastActivityAt.Time.Equal(t0) {
		t.Fatalf("opened: %+v", inc.Status)
	}
	ApplyNote(inc, t0, "looking", "olga")
	if !Unseen(inc) || RefsUnseen(inc) {
		t.Fatal("a note is unseen, but no ref")
	}
	Observe(inc, t0.Add(time.Minute))
	if Unseen(inc) || !inc.Status.LastActivityAt.Time.Equal(t0.Add(time.Minute)) || inc.Status.ObservedTimelineSeq != inc.Status.TimelineSeq {
		t.Fatalf("observed: %+v", inc.Status)
	}
	Observe(inc, t0.Add(time.Hour))
	if !inc.Status.LastActivityAt.Time.Equal(t0.Add(time.Minute)) {
		t.Fatal("nothing new: lastActivityAt stays")
	}

	legacy := openIncident(time.Hour)
	legacy.Status.ObservedTimelineSeq, legacy.Status.Triage.ObservedAlertCount = 0, 0
	if !Legacy(legacy) || !Unseen(legacy) {
		t.Fatal("an Incident opened before the cursors is legacy")
	}
	Adopt(legacy)
	if Unseen(legacy) || legacy.Status.Triage.ObservedAlertCount != 1 || !legacy.Status.LastActivityAt.Time.Equal(t0) {
		t.Fatalf("adopted: %+v", legacy.Status)
	}
	fresh := testbuild.MakeIncident("fresh", "").State(v1.IncidentOpen).Obj()
	AppendAlert(fresh, "a", t0, "olga")
	if Legacy(fresh) {
		t.Fatal("an Incident not opened yet is not legacy, whatever was appended before the operator saw it")
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

// represented is what the timeline stands for: the seq range and how many
// entries, a Summary counting as the entries it replaced.
func represented(tl []v1.TimelineEntry) (first, last, count int64) {
	for i, e := range tl {
		lo, n := e.Seq, int64(1)
		if e.Summary != nil {
			lo, n = e.Summary.FirstSeq, e.Summary.Count
		}
		if i == 0 {
			first = lo
		}
		last = e.Seq
		count += n
	}
	return first, last, count
}

// TestTrimFoldsAtTheCap: with the mirror behind, entries past the hard cap
// are folded into one Summary at the front carrying their count, seq and
// time range; its seq is the newest folded one's, later folds grow it, and
// the timeline still stands for every entry since the mirror's mark.
func TestTrimFoldsAtTheCap(t *testing.T) {
	inc := &v1.Incident{}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for i := range 40 {
		AddEntry(inc, at(i), v1.TimelineNote, "mirrored", "")
	}
	inc.Status.MirroredTimelineSeq = 30
	var folded int64
	for i := 40; i < MaxTimelineEntries+60; i++ {
		AddEntry(inc, at(i), v1.TimelineAlertAppended, fmt.Sprintf("Alert a-%d appended", i), fmt.Sprintf("a-%d", i))
		folded += Trim(inc, true)
		if n := len(inc.Status.Timeline); n > MaxTimelineEntries {
			t.Fatalf("after seq %d: %d entries, over the cap", inc.Status.TimelineSeq, n)
		}
	}
	tl := inc.Status.Timeline
	if len(tl) != MaxTimelineEntries {
		t.Fatalf("want the timeline at the cap, got %d", len(tl))
	}
	s := tl[0]
	if s.Type != v1.TimelineSummary || s.Summary == nil {
		t.Fatalf("want a Summary first, got %+v", s)
	}
	// seq 1..30 were mirrored and go; 31.. are folded until the cap holds.
	wantCount := int64(MaxTimelineEntries + 60 - 30 - (MaxTimelineEntries - 1))
	if s.Summary.FirstSeq != 31 || s.Summary.Count != wantCount || s.Seq != 30+wantCount ||
		!s.Summary.FirstAt.Time.Equal(at(30)) || !s.At.Time.Equal(at(int(30+wantCount-1))) {
		t.Fatalf("summary: %+v %+v", s, s.Summary)
	}
	if folded != wantCount {
		t.Fatalf("newly folded counted %d, want %d (each entry once)", folded, wantCount)
	}
	if tl[1].Seq != s.Seq+1 || tl[1].Type != v1.TimelineAlertAppended {
		t.Fatalf("the entry after the summary: %+v", tl[1])
	}
	for _, want := range []string{fmt.Sprintf("%d timeline entries (seq 31 to %d", wantCount, s.Seq), "before PostgreSQL recorded them"} {
		if !strings.Contains(s.Message, want) {
			t.Fatalf("summary message %q lacks %q", s.Message, want)
		}
	}
	first, last, count := represented(tl)
	if first != 31 || last != inc.Status.TimelineSeq || count != last-first+1 {
		t.Fatalf("the timeline stands for seq %d..%d as %d entries", first, last, count)
	}

	step := "the mirror catches up past the summary: it and the other mirrored entries go"
	inc.Status.MirroredTimelineSeq = s.Seq + 10
	if Trim(inc, true) != 0 || len(inc.Status.Timeline) != MaxTimelineEntries-11 || inc.Status.Timeline[0].Seq != s.Seq+11 {
		t.Fatalf("%s: got %d entries from seq %d", step, len(inc.Status.Timeline), inc.Status.Timeline[0].Seq)
	}
	inc.Status.MirroredTimelineSeq = inc.Status.TimelineSeq
	Trim(inc, true)
	if len(inc.Status.Timeline) != MaxTimeline {
		t.Fatalf("caught up: want %d, got %d", MaxTimeline, len(inc.Status.Timeline))
	}
}

// TestTrimBoundsTheSize: entries whose messages JSON inflates are folded by
// size before the count cap, so the object stays far below etcd's limit.
func TestTrimBoundsTheSize(t *testing.T) {
	inc := &v1.Incident{}
	heavy := strings.Repeat("<", maxMessage) // six bytes each in JSON
	for range 200 {
		AddEntry(inc, t0, v1.TimelineNote, heavy, "")
		Trim(inc, true)
	}
	tl := inc.Status.Timeline
	if tl[0].Type != v1.TimelineSummary || len(tl) >= 200 {
		t.Fatalf("want a summary and fewer than 200 entries, got %d starting with %s", len(tl), tl[0].Type)
	}
	raw, err := json.Marshal(tl)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > MaxTimelineBytes {
		t.Fatalf("the timeline encodes to %d bytes, over %d", len(raw), MaxTimelineBytes)
	}
	if _, _, count := represented(tl); count != 200 {
		t.Fatalf("the timeline stands for %d entries, want 200", count)
	}
	// With the mirror off, entries simply go: no summary.
	off := &v1.Incident{}
	for range 200 {
		AddEntry(off, t0, v1.TimelineNote, heavy, "")
		Trim(off, false)
	}
	for _, e := range off.Status.Timeline {
		if e.Type == v1.TimelineSummary {
			t.Fatal("with the mirror off nothing is summarised")
		}
	}
	raw, _ = json.Marshal(off.Status.Timeline)
	if len(raw) > MaxTimelineBytes {
		t.Fatalf("mirror off: the timeline encodes to %d bytes", len(raw))
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

func TestPostWebhookMakesOneAttempt(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch {
		case strings.HasSuffix(r.URL.Path, "/bad"):
			w.WriteHeader(http.StatusBadRequest)
		case strings.HasSuffix(r.URL.Path, "/busy"):
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	run := &Run{Run: "r"}
	for _, tc := range []struct {
		path      string
		ok        bool
		retryable bool
	}{{"/ok", true, false}, {"/busy", false, true}, {"/bad", false, false}} {
		calls.Store(0)
		retryable, err := PostWebhook(context.Background(), srv.Client(), srv.URL+tc.path, "", run)
		if (err == nil) != tc.ok || retryable != tc.retryable || calls.Load() != 1 {
			t.Errorf("%s: got err %v, retryable %v after %d calls; want ok=%v retryable=%v after one", tc.path, err, retryable, calls.Load(), tc.ok, tc.retryable)
		}
	}
}

func TestWebhookBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempts int32
		want     time.Duration
	}{{1, 2 * time.Second}, {2, 4 * time.Second}, {3, 8 * time.Second}, {6, 64 * time.Second}, {7, WebhookMaxBackoff}, {50, WebhookMaxBackoff}} {
		if got := WebhookBackoff(2*time.Second, tc.attempts); got != tc.want {
			t.Errorf("after %d attempts: got %s, want %s", tc.attempts, got, tc.want)
		}
	}
}

// TestWebhookDeliveryRecord: each attempt is recorded; a retryable failure
// schedules the next one until the attempts are spent; a failure not worth
// retrying, and a success, end the delivery.
func TestWebhookDeliveryRecord(t *testing.T) {
	inc := openIncident(time.Hour)
	run := PendingRun(inc)
	d := Delivery(inc, run.Run)
	if d.Run != run.Run || d.Attempts != 0 || WebhookWait(inc, t0) != 0 {
		t.Fatalf("a new record: got %+v, wait %s", d, WebhookWait(inc, t0))
	}
	busy := fmt.Errorf("webhook answered HTTP 503 (Service Unavailable)")
	now := t0
	for i := int32(1); i < WebhookAttempts; i++ {
		if RecordAttempt(d, now, time.Second, true, busy) {
			t.Fatalf("attempt %d of %d: given up too early", i, WebhookAttempts)
		}
		if d.Attempts != i || d.LastError != busy.Error() || !d.NextAttemptAt.Time.Equal(now.Add(WebhookBackoff(time.Second, i))) {
			t.Fatalf("attempt %d: %+v", i, d)
		}
		inc.Status.Triage.Webhook = d
		if wait := WebhookWait(inc, now); wait != WebhookBackoff(time.Second, i) {
			t.Fatalf("attempt %d: wait %s", i, wait)
		}
		now = d.NextAttemptAt.Time
		if WebhookWait(inc, now) != 0 {
			t.Fatalf("attempt %d: not due at nextAttemptAt", i)
		}
	}
	if !RecordAttempt(d, now, time.Second, true, busy) || d.NextAttemptAt != nil || d.DeliveredAt != nil || d.Attempts != WebhookAttempts {
		t.Fatalf("the last attempt must give up: %+v", d)
	}

	d = &v1.WebhookDelivery{Run: "r"}
	if RecordAttempt(d, t0.Add(300*time.Millisecond), 10*time.Millisecond, true, busy) || !d.NextAttemptAt.Time.Equal(t0.Add(time.Second)) {
		t.Fatalf("nextAttemptAt is rounded up to the whole second status keeps: %+v", d.NextAttemptAt)
	}
	d = &v1.WebhookDelivery{Run: "r"}
	if !RecordAttempt(d, t0, time.Second, false, fmt.Errorf("webhook answered HTTP 400 (Bad Request)")) || d.NextAttemptAt != nil || d.Attempts != 1 {
		t.Fatalf("a failure not worth retrying ends the delivery: %+v", d)
	}
	d = &v1.WebhookDelivery{Run: "r", Attempts: 2, LastError: "x"}
	if !RecordAttempt(d, t0, time.Second, false, nil) || d.DeliveredAt == nil || d.LastError != "" || d.Attempts != 3 {
		t.Fatalf("a success ends the delivery: %+v", d)
	}
	inc.Status.Triage.Webhook = &v1.WebhookDelivery{Run: "an-older-run", Attempts: 3, NextAttemptAt: &metav1.Time{Time: t0.Add(time.Hour)}}
	if WebhookWait(inc, t0) != 0 || Delivery(inc, run.Run).Attempts != 0 {
		t.Fatal("the record of another run says nothing about this one")
	}
}

func TestPostmortem(t *testing.T) {
	inc := openIncident(time.Hour)
	inc.Spec.Title, inc.Spec.Note = "p95 above 300ms", "rolled back"
	AppendAlert(inc, "second", t0.Add(time.Minute), "olga")
	ApplyNote(inc, t0.Add(2*time.Minute), "rolled | back", "olga")
	inc.Spec.State = v1.IncidentClosed
	ApplyState(inc, t0.Add(42*time.Minute))
	md := Postmortem(inc)
	for _, want := range []string{"# Postmortem draft: p95 above 300ms", "| Closing note | rolled back |", "Open for: 42m0s",
		"## Linked alerts (2)", "- `second`", "Runs: 1", "TriageStarted", "| Note | olga |  | rolled \\| back |"} {
		if !strings.Contains(md, want) {
			t.Errorf("postmortem lacks %q:\n%s", want, md)
		}
	}
}

// BenchmarkAppendAtBound measures an append to an Incident whose alertRefs
// and timeline are at their bounds (the steady state of a storm; the
// operator, not the append, keeps them there), against BenchmarkAppendFresh,
// an append to a new Incident.
func BenchmarkAppendAtBound(b *testing.B) {
	inc := openIncident(time.Hour)
	for i := range MaxTimeline + 10 {
		AppendAlert(inc, fmt.Sprintf("warm-%d", i), t0, "olga")
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
		AppendAlert(c, names[i], t0, "olga")
	}
}

func BenchmarkAppendFresh(b *testing.B) {
	inc := openIncident(time.Hour)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := inc.DeepCopy()
		AppendAlert(c, "a", t0, "olga")
	}
}
