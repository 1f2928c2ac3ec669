package query

import (
	"cmp"
	"slices"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/silence"
)

// Dashboard is the operational dashboard
// (GET /v1/alerts/dashboard), also shown by the page and the CLI.
type Dashboard struct {
	Namespace     string           `json:"namespace,omitempty"`
	WindowMinutes int64            `json:"windowMinutes"`
	GeneratedAt   time.Time        `json:"generatedAt"`
	Counts        map[string]int64 `json:"counts"`
	// Silenced counts the Alerts in the window still in play (New,
	// Processing, Failed) that an active Silence silences: counted in
	// Counts too, but nobody claims, converts or notifies them.
	Silenced      int64            `json:"silenced"`
	Occurrences   int64            `json:"occurrences"`
	TopSignatures []SignatureCount `json:"topSignatures"`
	Latest        []AlertSummary   `json:"latest"`
	OpenIncidents []IncidentInfo   `json:"openIncidents"`
	Gates         []GateInfo       `json:"gates"`
	// Silences are the active and pending Silences (where the caller may
	// list them), the soonest to end first.
	Silences []SilenceInfo `json:"silences"`
}

// SilenceInfo is one active or pending Silence.
type SilenceInfo struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// State is Active or Pending.
	State string `json:"state"`
	// Matchers in Alertmanager's syntax, e.g. {service="gateway"}.
	Matchers  string    `json:"matchers"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	// Alerts counts the silenced Alerts of the dashboard this Silence
	// matches while it is Active (0 while Pending).
	Alerts int64 `json:"alerts"`
}

// SignatureCount is one service/env/kind and how often it fired.
type SignatureCount struct {
	Signature   string `json:"signature"`
	Service     string `json:"service"`
	Env         string `json:"env"`
	Kind        string `json:"kind"`
	Alerts      int64  `json:"alerts"`
	Occurrences int64  `json:"occurrences"`
}

// AlertSummary is one line of the latest alerts.
type AlertSummary struct {
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	Phase       string    `json:"phase"`
	Service     string    `json:"service"`
	Env         string    `json:"env"`
	Kind        string    `json:"kind"`
	Severity    string    `json:"severity"`
	Title       string    `json:"title"`
	Source      string    `json:"source,omitempty"`
	Occurrences int64     `json:"occurrences"`
	Holder      string    `json:"holder,omitempty"`
	LastSeenAt  time.Time `json:"lastSeenAt"`
	// SilencedBy is the Silenced condition's message while a Silence
	// silences the Alert ("silenced by Silence NAME until T").
	SilencedBy string `json:"silencedBy,omitempty"`
}

// IncidentInfo is one open incident.
type IncidentInfo struct {
	Namespace      string     `json:"namespace"`
	Name           string     `json:"name"`
	State          string     `json:"state"`
	Service        string     `json:"service"`
	Env            string     `json:"env"`
	Severity       string     `json:"severity"`
	Title          string     `json:"title"`
	AlertCount     int64      `json:"alertCount"`
	LastActivityAt time.Time  `json:"lastActivityAt"`
	CooldownUntil  *time.Time `json:"cooldownUntil,omitempty"`
	// LastNotification is the Incident's most recent notification to a
	// Receiver (status.notifications), if any.
	LastNotification *NotificationInfo `json:"lastNotification,omitempty"`
}

// GateInfo is one release gate.
type GateInfo struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Service   string     `json:"service"`
	Env       string     `json:"env"`
	Decision  string     `json:"decision"`
	Reason    string     `json:"reason"`
	Message   string     `json:"message,omitempty"`
	Evaluated *time.Time `json:"lastEvaluatedAt,omitempty"`
	// Budgets are the policy's error-budget objectives (budget.go).
	Budgets []BudgetInfo `json:"budgets,omitempty"`
}

// Limits of the dashboard's lists.
const (
	TopSignatures = 10
	LatestAlerts  = 20
	// SilencesShown bounds the dashboard's list of Silences.
	SilencesShown = 50
)

// BuildDashboard summarises what is inside window (0: everything).
// silences are those the caller may list (nil: none).
func BuildDashboard(alerts []v1.Alert, incidents []v1.Incident, policies []v1.SLOPolicy, silences []v1.Silence,
	namespace string, window time.Duration, now time.Time) Dashboard {
	d := Dashboard{
		Namespace:     namespace,
		WindowMinutes: int64(window / time.Minute),
		GeneratedAt:   now.UTC(),
		Counts:        map[string]int64{},
		TopSignatures: []SignatureCount{},
		Latest:        []AlertSummary{},
		OpenIncidents: []IncidentInfo{},
		Gates:         []GateInfo{},
		Silences:      []SilenceInfo{},
	}
	for _, p := range Phases {
		d.Counts[string(p)] = 0
	}
	inWindow := Alerts(alerts, AlertFilter{Window: window}, now)
	sigs := map[string]*SignatureCount{}
	for i := range inWindow {
		a := &inWindow[i]
		if a.Status.Phase == "" {
			continue // not decided yet: counted once the controller has
		}
		d.Counts[string(a.Status.Phase)]++
		if a.Status.Phase == v1.AlertDeduplicated {
			continue // its occurrence is in its canonical
		}
		if a.Status.Phase.Absorbing() && silence.Silenced(&a.Status) {
			d.Silenced++
		}
		d.Occurrences += a.Status.Occurrences
		sig := a.Spec.Service + "/" + a.Spec.Env + "/" + a.Spec.Kind
		s := sigs[sig]
		if s == nil {
			s = &SignatureCount{Signature: sig, Service: a.Spec.Service, Env: a.Spec.Env, Kind: a.Spec.Kind}
			sigs[sig] = s
		}
		s.Alerts++
		s.Occurrences += a.Status.Occurrences
		if len(d.Latest) < LatestAlerts {
			d.Latest = append(d.Latest, summarize(a))
		}
	}
	for _, s := range sigs {
		d.TopSignatures = append(d.TopSignatures, *s)
	}
	slices.SortFunc(d.TopSignatures, func(a, b SignatureCount) int {
		if c := cmp.Compare(b.Occurrences, a.Occurrences); c != 0 {
			return c
		}
		return cmp.Compare(a.Signature, b.Signature)
	})
	if len(d.TopSignatures) > TopSignatures {
		d.TopSignatures = d.TopSignatures[:TopSignatures]
	}
	for _, inc := range OpenIncidents(incidents, "") {
		d.OpenIncidents = append(d.OpenIncidents, IncidentSummary(&inc))
	}
	for i := range policies {
		d.Gates = append(d.Gates, gate(&policies[i]))
	}
	slices.SortFunc(d.Gates, func(a, b GateInfo) int { return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	d.Silences = silenceInfos(inWindow, silences, now)
	return d
}

// silenceInfos lists the active and pending Silences, the soonest to end
// first, each with the silenced Alerts of alerts it matches.
func silenceInfos(alerts []v1.Alert, silences []v1.Silence, now time.Time) []SilenceInfo {
	out := []SilenceInfo{}
	for i := range silences {
		s := &silences[i]
		// The operator's judgement (the namespace's maxDuration) is in
		// status; the time is ours, so a state not yet written is right.
		rule := silence.Judge(s, silence.AbsoluteMaxDuration)
		state := silence.StateOf(s, now)
		if state != v1.SilenceActive && state != v1.SilencePending {
			continue
		}
		info := SilenceInfo{
			Namespace: s.Namespace, Name: s.Name, State: string(state), Matchers: silence.String(s.Spec.Matchers),
			CreatedBy: s.Spec.CreatedBy, Comment: s.Spec.Comment, StartsAt: rule.Start.UTC(), EndsAt: rule.End.UTC(),
		}
		for j := range alerts {
			if state != v1.SilenceActive {
				break
			}
			a := &alerts[j]
			if a.Namespace == s.Namespace && a.Status.Phase.Absorbing() && silence.Silenced(&a.Status) && rule.Matches(silence.Labels(a)) {
				info.Alerts++
			}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b SilenceInfo) int {
		if c := a.EndsAt.Compare(b.EndsAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	if len(out) > SilencesShown {
		out = out[:SilencesShown]
	}
	return out
}

func summarize(a *v1.Alert) AlertSummary {
	s := AlertSummary{
		Namespace: a.Namespace, Name: a.Name, Phase: string(a.Status.Phase),
		Service: a.Spec.Service, Env: a.Spec.Env, Kind: a.Spec.Kind, Severity: string(a.Spec.Severity),
		Title: a.Spec.Title, Source: a.Spec.Source, Occurrences: a.Status.Occurrences, LastSeenAt: LastSeen(a).UTC(),
	}
	if a.Status.Phase == v1.AlertProcessing && a.Status.Claim != nil {
		s.Holder = a.Status.Claim.HolderIdentity
	}
	if a.Status.Phase.Absorbing() {
		s.SilencedBy = silence.SilencedBy(&a.Status)
	}
	return s
}

// IncidentSummary is the dashboard's line for an Incident.
func IncidentSummary(inc *v1.Incident) IncidentInfo {
	i := IncidentInfo{
		Namespace: inc.Namespace, Name: inc.Name, State: string(inc.Spec.State), Service: inc.Spec.Service,
		Env: inc.Spec.Env, Severity: string(inc.Spec.Severity), Title: inc.Spec.Title,
		AlertCount: inc.Status.AlertCount, LastActivityAt: activity(inc).UTC(),
	}
	if t := inc.Status.Triage; t != nil && t.CooldownUntil != nil {
		u := t.CooldownUntil.UTC()
		i.CooldownUntil = &u
	}
	i.LastNotification = LastNotification(inc)
	return i
}

func gate(p *v1.SLOPolicy) GateInfo {
	g := GateInfo{Namespace: p.Namespace, Name: p.Name, Service: p.Spec.Service, Env: p.Spec.Env}
	if p.Status.Gate != nil {
		g.Decision, g.Reason, g.Message = string(p.Status.Gate.Decision), p.Status.Gate.Reason, p.Status.Gate.Message
	}
	if p.Status.LastEvaluatedAt != nil {
		t := p.Status.LastEvaluatedAt.UTC()
		g.Evaluated = &t
	}
	g.Budgets = budgets(p)
	return g
}
