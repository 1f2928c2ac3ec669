package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/intake"
)

// The oracle judges a settled run:
//
//  1. Counts. Per fingerprint (each has a service of its own) the
//     occurrences of its Alerts (the Deduplicated ones left out: they are
//     folded into a canonical) lie in [confirmed, confirmed + unknown]:
//     an occurrence is confirmed when any attempt got a 2xx for it (a
//     keyed retry or resend that is answered 2xx again, replayed, still
//     counts once), not counted when every answer said so (429, the
//     intake's "retry later", a 4xx refusal), and unknown when an answer
//     was lost (no answer, a timeout, a 5xx other than "retry later")
//     and no later attempt confirmed it. Only unknown occurrences may
//     make the count exceed the confirmed ones; a count below them lost
//     an acknowledged occurrence, one above the upper bound doubled one.
//  2. One holder. No two claims answered 200 for one Alert carry the same
//     status.attempts (one lease each); a claim by another owner starts
//     no earlier than the previous lease's expiry or its holder's ack or
//     fail; an ack or fail answered 200 acted on the caller's own lease
//     (the answer's attempts are the claim's); the final
//     status.claim.leaseTransitions is attempts - 1.
//  3. Mirror. Every Alert and Incident in the cluster has its row in
//     PostgreSQL with its final resourceVersion (Acked and Failed named
//     as such).
//  4. Incidents. Every Alert a to-incident answered 200 for (created or
//     appended) is in its Incident's alertRefs (or, the list being capped
//     at 100 newest, counted by alertCount), and carries the
//     incidentRef. Triage is the operator's alone: the last run bears the
//     name the operator derives, and the operator's own entries (opened,
//     triage, state, summaries) name no author.
//  5. Gate. Every evaluation seen in the gate's answers decided Block
//     exactly when its observed p95 is above the objective, and agrees
//     with what the same Prometheus answers for the gate's query at the
//     evaluation's time (see checkGateProm).
//  6. Liveness. No Alert is left undecided (empty phase) and no lease
//     outlives its expiry by more than a minute once the operator runs.
//  7. Keys. Every keyed occurrence is held by at most one Alert that is
//     not a folded duplicate (see checkKeys).
func (rn *runner) oracle(ctx context.Context) []string {
	var v []string
	var alerts v1.AlertList
	if err := rn.env.Admin.List(ctx, &alerts, client.InNamespace(rn.ns)); err != nil {
		return []string{"cannot list Alerts: " + err.Error()}
	}
	var incidents v1.IncidentList
	if err := rn.env.Admin.List(ctx, &incidents, client.InNamespace(rn.ns)); err != nil {
		return []string{"cannot list Incidents: " + err.Error()}
	}
	v = append(v, rn.checkLiveness(alerts.Items)...)
	v = append(v, rn.checkCounts(alerts.Items)...)
	v = append(v, rn.checkKeys(alerts.Items)...)
	v = append(v, rn.checkClaims(alerts.Items)...)
	v = append(v, rn.checkMirror(ctx, alerts.Items, incidents.Items)...)
	v = append(v, rn.checkIncidents(alerts.Items, incidents.Items)...)
	v = append(v, rn.checkGateProm(ctx)...)
	return v
}

// record is a journal entry as the first divergent record of a finding.
func (rn *runner) record(seq int64) string {
	e, ok := rn.journal.Get(seq)
	if !ok {
		return "(no journal entry)"
	}
	// The journal file keeps the whole answer; the finding names it.
	e.Answer = clip.Mark(e.Answer, 600)
	b, _ := json.Marshal(e)
	return string(b)
}

func (rn *runner) checkLiveness(alerts []v1.Alert) []string {
	var v []string
	now := time.Now()
	for i := range alerts {
		a := &alerts[i]
		if a.Status.Phase == "" {
			v = append(v, fmt.Sprintf("liveness: Alert %s has no phase (undecided)", a.Name))
		}
		if c := a.Status.Claim; a.Status.Phase == v1.AlertProcessing && c != nil {
			exp := c.RenewTime.Add(time.Duration(c.LeaseDurationSeconds) * time.Second)
			if now.Sub(exp) > time.Minute {
				v = append(v, fmt.Sprintf("liveness: Alert %s is Processing by %s with a lease that expired at %s", a.Name, c.HolderIdentity, exp.UTC().Format(time.RFC3339)))
			}
		}
	}
	return v
}

func (rn *runner) checkCounts(alerts []v1.Alert) []string {
	counted := map[string]int64{}
	for i := range alerts {
		a := &alerts[i]
		if a.Status.Phase == v1.AlertDeduplicated {
			continue
		}
		counted[a.Spec.Service] += a.Status.Occurrences
	}
	rn.counted = 0
	for _, n := range counted {
		rn.counted += n
	}
	var v []string
	b := rn.ledger.bounds()
	services := make([]string, 0, len(b))
	for s := range b {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, s := range services {
		n, w := counted[s], b[s]
		switch {
		case n < w.lo:
			v = append(v, fmt.Sprintf("count %s: the cluster counts %d occurrences, %d were acknowledged with a 2xx (lost %d); a confirmed request: %s",
				s, n, w.lo, w.lo-n, rn.record(w.lastConfirmed)))
		case n > w.hi:
			v = append(v, fmt.Sprintf("count %s: the cluster counts %d occurrences, at most %d were sent and not refused (%d confirmed, doubled %d); a request: %s",
				s, n, w.hi, w.lo, n-w.hi, rn.record(w.lastConfirmed)))
		}
	}
	for s := range counted {
		if _, ok := b[s]; !ok {
			v = append(v, fmt.Sprintf("count %s: the cluster counts %d occurrences of a service the storm never sent", s, counted[s]))
		}
	}
	return v
}

// checkKeys names a keyed occurrence counted twice, which checkCounts sees
// only as a service's sum above its bound (or not at all, when another
// occurrence with a lost answer was not counted): every key is held
// (alertstate.HeldKeys) by at most one Alert that is not a folded
// duplicate, since a second one counted it again.
func (rn *runner) checkKeys(alerts []v1.Alert) []string {
	ids := rn.ledger.keyedIDs()
	byHash := make(map[string]string, len(ids))
	for _, id := range ids {
		byHash[intake.HashKey(rn.caller, id)] = id
	}
	holders := map[string][]string{}
	for i := range alerts {
		a := &alerts[i]
		if a.Status.Phase == v1.AlertDeduplicated {
			continue
		}
		for _, k := range alertstate.HeldKeys(a) {
			if id, ok := byHash[k]; ok {
				holders[id] = append(holders[id], a.Name)
			}
		}
	}
	var v []string
	for _, id := range ids {
		if h := holders[id]; len(h) > 1 {
			var reqs []string
			for _, seq := range rn.journal.Carrying(id, 3) {
				reqs = append(reqs, rn.record(seq))
			}
			v = append(v, fmt.Sprintf("key %s: one occurrence counted by %d Alerts (%s); its requests: %s",
				id, len(h), strings.Join(h, ", "), strings.Join(reqs, " ")))
		}
	}
	return v
}

func (rn *runner) checkClaims(alerts []v1.Alert) []string {
	rn.claims.mu.Lock()
	claims := slices.Clone(rn.claims.claims)
	actions := slices.Clone(rn.claims.actions)
	rn.claims.mu.Unlock()
	var v []string
	byUID := map[string][]*claimRecord{}
	for _, c := range claims {
		byUID[c.uid] = append(byUID[c.uid], c)
	}
	for uid, cs := range byUID {
		sort.Slice(cs, func(i, j int) bool { return cs[i].attempts < cs[j].attempts })
		for i := 1; i < len(cs); i++ {
			a, b := cs[i-1], cs[i]
			if a.attempts == b.attempts {
				v = append(v, fmt.Sprintf("claim: Alert %s (uid %s) was claimed twice as attempt %d, by %s and %s: %s", b.ref, uid, b.attempts, a.owner, b.owner, rn.record(b.seq)))
				continue
			}
			if a.owner == b.owner || b.acquired.IsZero() {
				continue
			}
			end := a.expires
			if !a.released.IsZero() && a.released.Before(end) {
				end = a.released
			}
			// The lease times are the API server's clock, the release
			// the agent's: one machine here, so one clock.
			if b.acquired.Before(end) {
				v = append(v, fmt.Sprintf("claim: Alert %s was claimed by %s at %s while %s held it until %s: %s",
					b.ref, b.owner, b.acquired.Format(time.RFC3339Nano), a.owner, end.Format(time.RFC3339Nano), rn.record(b.seq)))
			}
		}
	}
	for _, a := range actions {
		if a.answered != a.claimed {
			v = append(v, fmt.Sprintf("claim: %s's %s of %s was accepted on attempt %d although its lease was attempt %d: %s",
				a.owner, a.op, a.ref, a.answered, a.claimed, rn.record(a.seq)))
		}
	}
	for i := range alerts {
		s := &alerts[i].Status
		if s.Claim != nil && s.Claim.LeaseTransitions != s.Attempts-1 {
			v = append(v, fmt.Sprintf("claim: Alert %s has leaseTransitions %d after %d claims", alerts[i].Name, s.Claim.LeaseTransitions, s.Attempts))
		}
		var max int32
		for _, c := range byUID[string(alerts[i].UID)] {
			max = c.attempts
		}
		if s.Attempts < max {
			v = append(v, fmt.Sprintf("claim: Alert %s has attempts %d, a claim was answered with attempt %d", alerts[i].Name, s.Attempts, max))
		}
	}
	return v
}

func (rn *runner) checkMirror(ctx context.Context, alerts []v1.Alert, incidents []v1.Incident) []string {
	rows, err := rn.mirrorRows(ctx)
	if err != nil {
		return []string{"mirror: cannot read the alerts table: " + err.Error()}
	}
	irows, err := rn.incidentRows(ctx)
	if err != nil {
		return []string{"mirror: cannot read the incidents table: " + err.Error()}
	}
	var v []string
	for i := range alerts {
		a := &alerts[i]
		r, ok := rows[string(a.UID)]
		switch {
		case !ok:
			v = append(v, fmt.Sprintf("mirror: %s Alert %s (resourceVersion %s) has no row", a.Status.Phase, a.Name, a.ResourceVersion))
		case r.rv != a.ResourceVersion:
			v = append(v, fmt.Sprintf("mirror: %s Alert %s is at resourceVersion %s, its row at %s (%s)", a.Status.Phase, a.Name, a.ResourceVersion, r.rv, r.phase))
		}
	}
	for i := range incidents {
		in := &incidents[i]
		r, ok := irows[string(in.UID)]
		switch {
		case !ok:
			v = append(v, fmt.Sprintf("mirror: Incident %s (resourceVersion %s) has no row", in.Name, in.ResourceVersion))
		case r.rv != in.ResourceVersion:
			v = append(v, fmt.Sprintf("mirror: Incident %s is at resourceVersion %s, its row at %s", in.Name, in.ResourceVersion, r.rv))
		}
	}
	return v
}

func (rn *runner) checkIncidents(alerts []v1.Alert, incidents []v1.Incident) []string {
	rn.claims.mu.Lock()
	convs := slices.Clone(rn.claims.conversions)
	rn.claims.mu.Unlock()
	byName := map[string]*v1.Incident{}
	for i := range incidents {
		byName[incidents[i].Namespace+"/"+incidents[i].Name] = &incidents[i]
	}
	alertByRef := map[string]*v1.Alert{}
	for i := range alerts {
		alertByRef[alerts[i].Namespace+"/"+alerts[i].Name] = &alerts[i]
	}
	linked := map[string]map[string]bool{}
	var v []string
	for _, c := range convs {
		in := byName[c.incident]
		if in == nil {
			v = append(v, fmt.Sprintf("incident: %s, which %s was appended to, is gone: %s", c.incident, c.alert, rn.record(c.seq)))
			continue
		}
		if linked[c.incident] == nil {
			linked[c.incident] = map[string]bool{}
		}
		linked[c.incident][c.alert] = true
		_, name, _ := strings.Cut(c.alert, "/")
		inRefs := slices.Contains(in.Status.AlertRefs, name) || slices.Contains(in.Status.AlertRefs, c.alert)
		if !inRefs && len(in.Status.AlertRefs) < 100 {
			v = append(v, fmt.Sprintf("incident: %s lost the appended Alert %s (alertRefs %v): %s", c.incident, c.alert, in.Status.AlertRefs, rn.record(c.seq)))
		}
		if a := alertByRef[c.alert]; a != nil && a.Status.Phase != v1.AlertDeduplicated {
			if a.Status.IncidentRef == nil || a.Namespace+"/"+a.Status.IncidentRef.Name != c.incident {
				v = append(v, fmt.Sprintf("incident: Alert %s was appended to %s but its incidentRef is %v: %s", c.alert, c.incident, a.Status.IncidentRef, rn.record(c.seq)))
			}
		}
	}
	for name, as := range linked {
		if in := byName[name]; in != nil && in.Status.AlertCount < int64(len(as)) {
			v = append(v, fmt.Sprintf("incident: %s counts %d Alerts, %d were appended to it", name, in.Status.AlertCount, len(as)))
		}
	}
	for i := range incidents {
		v = append(v, operatorsOwn(&incidents[i])...)
	}
	return v
}

// operatorsOwn checks what only the operator writes in an Incident's
// status: its triage run's name and its own timeline entries.
func operatorsOwn(in *v1.Incident) []string {
	var v []string
	if t := in.Status.Triage; t != nil && t.Runs > 0 && (t.LastRunRef == nil || t.LastRunRef.Name != incident.RunName(in.Name, t.Runs)) {
		v = append(v, fmt.Sprintf("incident: %s's triage run %d is %v, not %s", in.Name, t.Runs, t.LastRunRef, incident.RunName(in.Name, t.Runs)))
	}
	for _, e := range in.Status.Timeline {
		if e.Type != v1.TimelineNote && e.Type != v1.TimelineAlertAppended && e.Author != "" {
			v = append(v, fmt.Sprintf("incident: %s's %s entry %d names %q: only the operator writes it", in.Name, e.Type, e.Seq, e.Author))
		}
	}
	return v
}
