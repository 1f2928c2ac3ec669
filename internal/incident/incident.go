// Package incident turns Alerts into Incidents and keeps an Incident's
// status: the signature that groups alerts, deterministic names, the bounded
// timeline and alert list, the severity cap and the per-signature triage
// cooldown. It knows nothing of reconcilers, the CLI or HTTP; all three call
// it.
//
// Its status changes come in two kinds. Conversions and notes make only the
// writes anyone may make (AppendAlert, ApplyNote): append an Alert ref, and
// timeline entries in the writer's name. Everything else is the operator's
// (ApplyOpen, ApplyTriage, ApplyState, Observe, Trim): the admission policy
// alertbridge-incident-status refuses it to everyone else, so nobody but
// the operator decides a triage run, names its Job or writes a record it
// relies on.
package incident

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
)

// Bounds of the in-cluster record.
const (
	// MaxAlertRefs is how many of the newest linked Alerts status keeps.
	MaxAlertRefs = 100
	// MaxTimeline is how many of the newest timeline entries status keeps
	// when older ones may go: any with the mirror off, only mirrored ones
	// with it on (unmirrored entries are kept past it, up to the fold cap).
	MaxTimeline = 100
	// TimelineItems is the CRD's MaxItems on status.timeline: the API
	// server refuses a write that would hold more.
	TimelineItems = 1000
	// MaxTimelineEntries is where the operator folds: past it, its next
	// write folds the oldest unmirrored entries into one Summary entry.
	// Users may only append, so they cannot fold; the fold cap sits 100
	// entries below TimelineItems to leave them that much room between two
	// operator writes (each append is a watch event, so the operator's
	// next write follows within one reconcile). An append that would go
	// past TimelineItems is refused until the operator has folded.
	MaxTimelineEntries = 900
	// MaxTimelineBytes caps the timeline's encoded size the same way (at
	// the same nine tenths of the 512 KiB it used to be), so an Incident
	// stays far below etcd's 1.5 MiB object limit whatever its messages
	// hold: 460 KiB, plus at worst 100 appended entries whose 1 KiB
	// messages and authors are all characters JSON escapes (under 800 KiB),
	// plus the rest of the object.
	MaxTimelineBytes = 460 << 10
	// maxSignature matches the CRD bound on spec.signature.
	maxSignature = 256
	// maxMessage matches the CRD bound on a timeline message.
	maxMessage = 1024
)

// SeqLabel numbers the Incidents of one signature; it makes names
// deterministic, so racing conversions create one Incident.
const SeqLabel = "ops.alertbridge.io/incident-seq"

// Signature is the default incident signature of an Alert:
// service/env/kind plus, in order, the chosen labels the Alert carries.
// It is coarser than the fingerprint: alerts of one service/env/kind from
// different hosts meet in one Incident.
func Signature(a *v1.Alert, labels []string) string {
	env := a.Spec.Env
	if env == "" {
		env = fingerprint.DefaultEnv
	}
	var b strings.Builder
	b.WriteString(a.Spec.Service + "/" + env + "/" + a.Spec.Kind)
	keys := slices.Clone(labels)
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if v, ok := a.Spec.Labels[k]; ok {
			b.WriteString("/" + k + "=" + v)
		}
	}
	s := b.String()
	if len(s) > maxSignature {
		// Keep it within the CRD bound and still unique.
		s = s[:maxSignature-33] + "#" + fingerprint.Hash(s)
	}
	return s
}

// SignatureHash is the label value of ops.alertbridge.io/signature.
func SignatureHash(sig string) string { return fingerprint.Hash(sig) }

// Name is the deterministic name of the seq-th Incident of a signature.
func Name(sig string, seq int64) string {
	return fmt.Sprintf("inc-%s-%d", SignatureHash(sig)[:16], seq)
}

// Seq is the SeqLabel of inc; 0 when absent (e.g. made with kubectl).
func Seq(inc *v1.Incident) int64 {
	n, err := strconv.ParseInt(inc.Labels[SeqLabel], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// RunName is the deterministic name of an Incident's n-th triage run; it is
// also the Job's name, so it stays within the 63 characters a Job allows.
func RunName(incident string, n int32) string {
	suffix := fmt.Sprintf("-triage-%d", n)
	if len(incident)+len(suffix) > 63 {
		incident = incident[:63-len(suffix)-9] + "-" + fingerprint.Hash(incident)[:8]
	}
	return incident + suffix
}

// CapSeverity returns s, or cap when s is worse than cap.
func CapSeverity(s, cap v1.Severity) v1.Severity {
	if cap != "" && s.Rank() < cap.Rank() {
		return cap
	}
	return s
}

// InCooldown reports whether the Incident's signature may not be triaged at now.
func InCooldown(t *v1.TriageStatus, now time.Time) bool {
	return t != nil && t.CooldownUntil != nil && now.Before(t.CooldownUntil.Time)
}

// LastActivity is when the Incident last changed: lastActivityAt, else its
// creation.
func LastActivity(inc *v1.Incident) time.Time {
	if inc.Status.LastActivityAt != nil {
		return inc.Status.LastActivityAt.Time
	}
	return inc.CreationTimestamp.Time
}

// DeletableAt is the earliest moment a Closed Incident may leave the
// cluster: retention after closedAt, and never before its triage cooldown
// ends (a new Incident of the signature inherits the cooldown from it).
// Zero means never (the Incident is not Closed).
func DeletableAt(inc *v1.Incident, retention time.Duration) time.Time {
	if inc.Spec.State != v1.IncidentClosed {
		return time.Time{}
	}
	at := inc.CreationTimestamp.Time
	if inc.Status.ClosedAt != nil {
		at = inc.Status.ClosedAt.Time
	}
	at = at.Add(retention)
	if t := inc.Status.Triage; t != nil && t.CooldownUntil != nil && t.CooldownUntil.After(at) {
		at = t.CooldownUntil.Time
	}
	return at
}

// AddEntry appends one of the operator's own timeline entries (no author)
// with the next seq.
func AddEntry(inc *v1.Incident, at time.Time, typ v1.TimelineType, msg, alertRef string) {
	addEntry(inc, at, typ, msg, alertRef, "")
}

func addEntry(inc *v1.Incident, at time.Time, typ v1.TimelineType, msg, alertRef, author string) {
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	inc.Status.TimelineSeq++
	inc.Status.Timeline = append(inc.Status.Timeline, v1.TimelineEntry{
		Seq: inc.Status.TimelineSeq, At: metav1.NewMicroTime(at), Type: typ, Message: msg, AlertRef: alertRef, Author: author,
	})
}

// Trim bounds the timeline; it reports how many entries it newly folded
// into a Summary entry (count them once the write lands).
//
// Past the newest MaxTimeline entries the oldest go while they may: any
// with the mirror off; with it on (mirrorOn) only entries the mirror has
// written (seq <= mirroredTimelineSeq), so nothing unmirrored is lost.
// Past the fold cap (MaxTimelineEntries, MaxTimelineBytes), e.g. while
// PostgreSQL is down, entries that may go go first; then the oldest
// unmirrored entries are folded into one Summary entry carrying their
// count, their seq range (its own seq is the newest one's, so the mirror
// writes it once) and their time range. A Summary at the front absorbs the
// next fold. Nothing leaves the cluster without a trace. Only the
// operator's writes call it (PatchStatus): users may only append.
func Trim(inc *v1.Incident, mirrorOn bool) int64 {
	tl := inc.Status.Timeline
	mayGo := func(e *v1.TimelineEntry) bool { return !mirrorOn || e.Seq <= inc.Status.MirroredTimelineSeq }
	drop := 0
	for len(tl)-drop > MaxTimeline && mayGo(&tl[drop]) {
		drop++
	}
	size := 0
	for i := drop; i < len(tl); i++ {
		size += entrySize(&tl[i])
	}
	for drop < len(tl) && overCap(len(tl)-drop, size) && mayGo(&tl[drop]) {
		size -= entrySize(&tl[drop])
		drop++
	}
	if !overCap(len(tl)-drop, size) {
		if drop > 0 {
			inc.Status.Timeline = slices.Delete(tl, 0, drop)
		}
		return 0
	}
	// Fold the fewest oldest entries (at least two) that bring the
	// timeline within the cap.
	rest := tl[drop:]
	n, foldedSize := 0, 0
	for n < len(rest) {
		foldedSize += entrySize(&rest[n])
		n++
		if n >= 2 && !overCap(len(rest)-n+1, size-foldedSize+summarySize) {
			break
		}
	}
	summary, newly := fold(rest[:n])
	bounded := make([]v1.TimelineEntry, 0, len(rest)-n+1)
	bounded = append(bounded, summary)
	bounded = append(bounded, rest[n:]...)
	inc.Status.Timeline = bounded
	return newly
}

// fold makes the Summary entry of es, oldest first; newly counts the
// entries of es that were not summaries already.
func fold(es []v1.TimelineEntry) (e v1.TimelineEntry, newly int64) {
	first, last := &es[0], &es[len(es)-1]
	s := &v1.SummarisedEntries{FirstSeq: first.Seq, FirstAt: first.At}
	if first.Summary != nil {
		s.FirstSeq, s.FirstAt = first.Summary.FirstSeq, first.Summary.FirstAt
	}
	for i := range es {
		if es[i].Summary != nil {
			s.Count += es[i].Summary.Count
			continue
		}
		s.Count++
		newly++
	}
	msg := fmt.Sprintf("%d timeline entries (seq %d to %d, %s to %s) folded into this summary: the timeline was at its cap "+
		"(%d entries or %d KiB) before PostgreSQL recorded them", s.Count, s.FirstSeq, last.Seq,
		s.FirstAt.UTC().Format(time.RFC3339), last.At.UTC().Format(time.RFC3339), MaxTimelineEntries, MaxTimelineBytes>>10)
	return v1.TimelineEntry{Seq: last.Seq, At: last.At, Type: v1.TimelineSummary, Message: msg, Summary: s}, newly
}

func overCap(entries, size int) bool { return entries > MaxTimelineEntries || size > MaxTimelineBytes }

// entryOverhead bounds the encoded size of an entry's keys, seq, at and
// type; summarySize that of a Summary entry.
const (
	entryOverhead = 128
	summarySize   = entryOverhead + 384
)

// entrySize bounds the encoded (JSON) size of e from above.
func entrySize(e *v1.TimelineEntry) int {
	n := entryOverhead + jsonLen(e.Message) + jsonLen(e.AlertRef) + jsonLen(e.Author)
	if e.Summary != nil {
		n += summarySize - entryOverhead
	}
	return n
}

// jsonLen bounds the length of s as a JSON string body: quotes and
// backslashes take two bytes, control and HTML characters six
// (\u003c), other bytes of valid UTF-8 (all the API server stores) at
// most two.
func jsonLen(s string) int {
	n := 0
	for i := range len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			n += 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c >= 0x80:
			n += 2
		default:
			n++
		}
	}
	return n
}

// Linked reports whether alert is among the newest linked Alerts.
func Linked(inc *v1.Incident, alert string) bool {
	return slices.Contains(inc.Status.AlertRefs, alert)
}

// Appended reports whether the Incident shows alert appended: among
// alertRefs, or named by an AlertAppended entry.
func Appended(inc *v1.Incident, alert string) bool {
	return Linked(inc, alert) ||
		slices.ContainsFunc(inc.Status.Timeline, func(e v1.TimelineEntry) bool { return e.Type == v1.TimelineAlertAppended && e.AlertRef == alert })
}

// Recorded reports whether the Incident may record alert as appended, for
// an Alert found linked to it: Appended, or, when the record is incomplete
// (refs dropped past MaxAlertRefs and entries trimmed from the timeline),
// that it cannot tell. Finishing a conversion then never counts an Alert
// twice, at the price of one uncounted Alert when a conversion that linked
// it stopped before its append and the Incident holds over 100 Alerts. A
// conversion that has just linked the Alert itself knows better: it goes
// by Appended (AppendAlert).
func Recorded(inc *v1.Incident, alert string) bool {
	if Appended(inc, alert) {
		return true
	}
	tl := inc.Status.Timeline
	refsComplete := inc.Status.AlertCount <= int64(len(inc.Status.AlertRefs))
	timelineComplete := inc.Status.TimelineSeq == 0 || (len(tl) > 0 && tl[0].Seq == 1 && tl[0].Summary == nil)
	return !refsComplete && !timelineComplete
}

// AppendAlert links alert to the Incident the way anyone allowed to patch
// incidents/status may: the ref appended at the end of alertRefs (the
// oldest dropped only to stay within MaxAlertRefs), alertCount one more,
// and one AlertAppended entry in author's name (empty only for the
// operator's own conversions). Whether it triages is the operator's to
// decide when it sees the ref. It changes nothing, and reports false, when
// the Incident shows the Alert appended already.
func AppendAlert(inc *v1.Incident, alert string, now time.Time, author string) bool {
	if Appended(inc, alert) {
		return false
	}
	inc.Status.AlertRefs = append(inc.Status.AlertRefs, alert)
	if n := len(inc.Status.AlertRefs) - MaxAlertRefs; n > 0 {
		inc.Status.AlertRefs = slices.Delete(inc.Status.AlertRefs, 0, n)
	}
	inc.Status.AlertCount++
	addEntry(inc, now, v1.TimelineAlertAppended, fmt.Sprintf("Alert %s appended", alert), alert, author)
	return true
}

// ApplyNote appends a Note entry in author's name; the author is recorded
// in the entry, not in its message.
func ApplyNote(inc *v1.Incident, now time.Time, note, author string) {
	addEntry(inc, now, v1.TimelineNote, note, "", author)
}

// ApplyOpen records that the operator opened the Incident: openedAt,
// observedState, lastActivityAt and the Opened entry. inherited is the
// triage state of the signature's previous Incidents: inside its cooldown
// the new Incident inherits the cooldown, so its first Alert does not
// triage again. Triage itself is ApplyTriage's, on the Alert refs.
func ApplyOpen(inc *v1.Incident, now time.Time, inherited *v1.TriageStatus) {
	inc.Status.OpenedAt = &metav1.Time{Time: now}
	inc.Status.LastActivityAt = &metav1.Time{Time: now}
	inc.Status.ObservedState = inc.Spec.State
	msg := fmt.Sprintf("Incident opened (%s, %s)", inc.Spec.Severity, inc.Spec.Title)
	if InCooldown(inherited, now) {
		t := triage(inc)
		t.LastTriageAt, t.CooldownUntil = inherited.LastTriageAt.DeepCopy(), inherited.CooldownUntil.DeepCopy()
		msg += fmt.Sprintf("; signature in triage cooldown until %s (inherited)", inherited.CooldownUntil.UTC().Format(time.RFC3339))
	}
	AddEntry(inc, now, v1.TimelineOpened, msg, "")
}

func triage(inc *v1.Incident) *v1.TriageStatus {
	if inc.Status.Triage == nil {
		inc.Status.Triage = &v1.TriageStatus{}
	}
	return inc.Status.Triage
}

// observedAlerts is status.triage.observedAlertCount.
func observedAlerts(inc *v1.Incident) int64 {
	if t := inc.Status.Triage; t != nil {
		return t.ObservedAlertCount
	}
	return 0
}

// Unseen reports whether the Incident holds something the operator has not
// looked at yet: it is not opened, or Alert refs or timeline entries were
// appended since its last look.
func Unseen(inc *v1.Incident) bool {
	return inc.Status.OpenedAt == nil || inc.Status.AlertCount != observedAlerts(inc) ||
		inc.Status.TimelineSeq != inc.Status.ObservedTimelineSeq
}

// RefsUnseen reports whether Alert refs were appended since the operator
// last decided triage.
func RefsUnseen(inc *v1.Incident) bool {
	return inc.Status.AlertCount != observedAlerts(inc)
}

// NewRefs are the Alert refs appended since the operator last decided
// triage (status.triage.observedAlertCount), oldest first: as many of the
// newest refs as alertCount passed it by, at most all alertRefs holds.
func NewRefs(inc *v1.Incident) []string {
	n := inc.Status.AlertCount - observedAlerts(inc)
	refs := inc.Status.AlertRefs
	if n <= 0 {
		return nil
	}
	return refs[len(refs)-int(min(n, int64(len(refs)))):]
}

// ApplyTriage records the operator's decision on the new Alert refs
// (NewRefs). alert is the newest of them the operator found to name an
// Alert that exists and is linked to this Incident (its
// status.incidentRef), or empty when none is. Outside the cooldown, an
// open Incident starts one run for it: runs+1, lastTriageAt, cooldownUntil,
// the run's deterministic name (RunName), lastRunAlertRef and a
// TriageStarted entry. Inside the cooldown, or with no such Alert, it
// records only that the refs were seen (observedAlertCount). It reports
// whether a run started.
func ApplyTriage(inc *v1.Incident, now time.Time, cooldown time.Duration, alert string) bool {
	t := triage(inc)
	t.ObservedAlertCount = inc.Status.AlertCount
	if alert == "" || !inc.Spec.State.IsOpen() || InCooldown(t, now) {
		return false
	}
	t.Runs++
	t.LastTriageAt = &metav1.Time{Time: now}
	t.CooldownUntil = &metav1.Time{Time: now.Add(cooldown)}
	t.LastRunRef = &v1.LocalObjectReference{Name: RunName(inc.Name, t.Runs)}
	t.LastRunAlertRef = alert
	AddEntry(inc, now, v1.TimelineTriageStarted, fmt.Sprintf("Triage run %s started for Alert %s; signature in cooldown until %s",
		t.LastRunRef.Name, alert, t.CooldownUntil.UTC().Format(time.RFC3339)), alert)
	return true
}

// Observe records that the operator has seen the Incident as it is now:
// lastActivityAt moves to now when Alert refs or timeline entries were
// appended since its last look, and the cursors move to the newest.
func Observe(inc *v1.Incident, now time.Time) {
	if Unseen(inc) {
		inc.Status.LastActivityAt = &metav1.Time{Time: now}
	}
	Adopt(inc)
}

// Legacy reports whether the Incident was opened before the operator kept
// its cursors (observedTimelineSeq, observedAlertCount): its refs were
// triaged when they were appended, so they are not new. It must be asked
// of the Incident as read, before the operator's changes.
func Legacy(inc *v1.Incident) bool {
	return inc.Status.OpenedAt != nil && inc.Status.ObservedTimelineSeq == 0 && inc.Status.TimelineSeq > 0 && observedAlerts(inc) == 0
}

// Adopt moves the cursors to the newest ref and entry without deciding
// anything on them: what Observe does after its look, and all the operator
// does with a Legacy Incident.
func Adopt(inc *v1.Incident) {
	if inc.Status.AlertCount != observedAlerts(inc) {
		triage(inc).ObservedAlertCount = inc.Status.AlertCount
	}
	inc.Status.ObservedTimelineSeq = inc.Status.TimelineSeq
}

// ApplyState records a spec.state change the controller has not yet
// recorded: its timestamp, a StateChanged (or Closed) entry and
// lastActivityAt. It returns the previous state, or "" when nothing changed.
func ApplyState(inc *v1.Incident, now time.Time) v1.IncidentState {
	from, to := inc.Status.ObservedState, inc.Spec.State
	if from == to {
		return ""
	}
	t := &metav1.Time{Time: now}
	switch to {
	case v1.IncidentOpen:
		inc.Status.ResolvedAt, inc.Status.MitigatingAt = nil, nil // a reopen starts a new episode
	case v1.IncidentMitigating:
		inc.Status.MitigatingAt = t
	case v1.IncidentResolved:
		inc.Status.ResolvedAt = t
	case v1.IncidentClosed:
		inc.Status.ClosedAt = t
	}
	inc.Status.ObservedState = to
	inc.Status.LastActivityAt = t
	if to == v1.IncidentClosed {
		AddEntry(inc, now, v1.TimelineClosed, fmt.Sprintf("Closed (was %s): %s", from, inc.Spec.Note), "")
	} else {
		AddEntry(inc, now, v1.TimelineStateChanged, fmt.Sprintf("State changed from %s to %s", from, to), "")
	}
	return from
}

// Inherited is the triage state with the latest cooldown among the
// signature's other Incidents; nil when none has one.
func Inherited(siblings []v1.Incident, self string) *v1.TriageStatus {
	var best *v1.TriageStatus
	for i := range siblings {
		t := siblings[i].Status.Triage
		if siblings[i].Name == self || t == nil || t.CooldownUntil == nil {
			continue
		}
		if best == nil || t.CooldownUntil.After(best.CooldownUntil.Time) {
			best = t
		}
	}
	return best
}
