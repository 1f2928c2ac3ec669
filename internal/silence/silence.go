// Package silence decides which Alerts a Silence silences, with
// Alertmanager's own matcher code (github.com/prometheus/alertmanager
// pkg/labels): the same operators, the same anchored RE2 regular
// expressions, and the same rule that an absent label has the value "".
// It is pure: the Alert controller, the CLI and the dashboard call it.
package silence

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/matcher/compat"
	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// DefaultMaxDuration applies when a namespace's policy sets no
// spec.silences.maxDuration.
const DefaultMaxDuration = 168 * time.Hour

// AbsoluteMaxDuration is the CRD's own bound.
const AbsoluteMaxDuration = 720 * time.Hour

// Labels is what a matcher sees of an Alert: every spec.labels entry, then
// service, env, kind, severity and namespace from the Alert's own fields
// (they win over a spec.labels entry of the same name), and alertname, the
// kind, for matchers written for Alertmanager. Defaults the API server
// applies (env prod, severity P3) are applied here too.
func Labels(a *v1.Alert) model.LabelSet {
	ls := make(model.LabelSet, len(a.Spec.Labels)+6)
	for k, v := range a.Spec.Labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	ls["service"] = model.LabelValue(a.Spec.Service)
	ls["env"] = model.LabelValue(cmp.Or(a.Spec.Env, "prod"))
	ls["kind"] = model.LabelValue(a.Spec.Kind)
	ls["alertname"] = model.LabelValue(a.Spec.Kind)
	ls["severity"] = model.LabelValue(cmp.Or(a.Spec.Severity, v1.SeverityP3))
	ls["namespace"] = model.LabelValue(a.Namespace)
	return ls
}

// operators maps the CRD's operators to Alertmanager's match types.
var operators = map[v1.MatchOperator]labels.MatchType{
	v1.MatchEqual:     labels.MatchEqual,
	v1.MatchNotEqual:  labels.MatchNotEqual,
	v1.MatchRegexp:    labels.MatchRegexp,
	v1.MatchNotRegexp: labels.MatchNotRegexp,
}

// Compile turns spec matchers into Alertmanager matchers. An empty operator
// is "=", as the CRD defaults it.
func Compile(ms []v1.SilenceMatcher) (labels.Matchers, error) {
	out := make(labels.Matchers, 0, len(ms))
	for i, m := range ms {
		t, ok := operators[cmp.Or(m.Operator, v1.MatchEqual)]
		if !ok {
			return nil, fmt.Errorf("spec.matchers[%d].operator: %q is not one of =, !=, =~, !~", i, m.Operator)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, fmt.Errorf("spec.matchers[%d].value: %q is not a valid regular expression: %w", i, m.Value, err)
		}
		out = append(out, lm)
	}
	return out, nil
}

// FromMatcher is the spec form of an Alertmanager matcher.
func FromMatcher(m *labels.Matcher) v1.SilenceMatcher {
	op := v1.MatchEqual
	for o, t := range operators {
		if t == m.Type {
			op = o
		}
	}
	return v1.SilenceMatcher{Name: m.Name, Operator: op, Value: m.Value}
}

// parser is amtool's: Alertmanager's UTF-8 matcher parser, falling back to
// the classic one for input only that accepts (unquoted regexes and the
// like), as amtool does by default.
var parser = compat.FallbackMatcherParser(slog.New(slog.DiscardHandler))

// Parse reads matchers written as amtool takes them, one per argument
// (service=gateway 'env=~"prod|staging"' 'route!="/healthz"'), or several
// in one argument inside braces ({service="gateway", env="prod"}).
func Parse(args []string) ([]v1.SilenceMatcher, error) {
	var out []v1.SilenceMatcher
	for _, arg := range args {
		var ms labels.Matchers
		if strings.HasPrefix(strings.TrimSpace(arg), "{") {
			var err error
			if ms, err = compat.FallbackMatchersParser(slog.New(slog.DiscardHandler))(arg, "cli"); err != nil {
				return nil, fmt.Errorf("matchers %s: %w", arg, err)
			}
		} else {
			m, err := parser(arg, "cli")
			if err != nil {
				return nil, fmt.Errorf("matcher %s: %w", arg, err)
			}
			ms = labels.Matchers{m}
		}
		for _, m := range ms {
			out = append(out, FromMatcher(m))
		}
	}
	return out, nil
}

// String writes matchers in Alertmanager's syntax, e.g.
// {service="gateway", env=~"prod|staging"}.
func String(ms []v1.SilenceMatcher) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		t, ok := operators[cmp.Or(m.Operator, v1.MatchEqual)]
		if !ok {
			parts = append(parts, fmt.Sprintf("%s%s%q", m.Name, m.Operator, m.Value))
			continue
		}
		// Built without compiling, so a bad regex still prints.
		parts = append(parts, (&labels.Matcher{Type: t, Name: m.Name, Value: m.Value}).String())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// MatchesEverything reports whether every matcher matches the empty string,
// which Alertmanager refuses and so does the CRD: such a Silence would
// silence every Alert of its namespace.
func MatchesEverything(ms labels.Matchers) bool {
	return !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches("") })
}

// Rule is a Silence ready to match: its window and compiled matchers, or
// why the operator does not apply it.
type Rule struct {
	Silence  *v1.Silence
	Start    time.Time
	End      time.Time
	matchers labels.Matchers
	// Invalid is why the Silence is not applied (nil when it is).
	Invalid *Invalid
}

// Invalid says why a Silence is not applied, as the reason and message of
// its Accepted condition.
type Invalid struct {
	Reason, Message string
}

func (e *Invalid) Error() string { return e.Message }

// Start is the effective start: spec.startsAt, else the creation time.
func Start(s *v1.Silence) time.Time {
	if s.Spec.StartsAt != nil {
		return s.Spec.StartsAt.Time
	}
	return s.CreationTimestamp.Time
}

// Judge compiles s and checks it against maxDuration, the namespace's
// bound (zero: DefaultMaxDuration).
func Judge(s *v1.Silence, maxDuration time.Duration) Rule {
	if maxDuration <= 0 {
		maxDuration = DefaultMaxDuration
	}
	maxDuration = min(maxDuration, AbsoluteMaxDuration)
	r := Rule{Silence: s, Start: Start(s), End: s.Spec.EndsAt.Time}
	ms, err := Compile(s.Spec.Matchers)
	switch {
	case err != nil:
		r.Invalid = &Invalid{Reason: v1.ReasonInvalidMatcher, Message: err.Error()}
	case len(ms) == 0 || MatchesEverything(ms):
		r.Invalid = &Invalid{Reason: v1.ReasonInvalidMatcher,
			Message: "spec.matchers: at least one matcher must not match the empty string (as in Alertmanager)"}
	case r.End.Sub(r.Start) > maxDuration:
		r.Invalid = &Invalid{Reason: v1.ReasonTooLong, Message: fmt.Sprintf(
			"spec.endsAt: the Silence lasts %s from %s, longer than this namespace allows (%s, AlertRoutingPolicy spec.silences.maxDuration); "+
				"end it sooner or split it", r.End.Sub(r.Start), r.Start.UTC().Format(time.RFC3339), maxDuration)}
	}
	r.matchers = ms
	return r
}

// JudgeAll judges every Silence of items.
func JudgeAll(items []v1.Silence, maxDuration time.Duration) []Rule {
	out := make([]Rule, 0, len(items))
	for i := range items {
		out = append(out, Judge(&items[i], maxDuration))
	}
	return out
}

// State is where the Silence stands at now.
func (r Rule) State(now time.Time) v1.SilenceState {
	switch {
	case r.Invalid != nil:
		return v1.SilenceInvalid
	case now.Before(r.Start):
		return v1.SilencePending
	case now.Before(r.End):
		return v1.SilenceActive
	}
	return v1.SilenceExpired
}

// ActiveAt reports whether the Silence silences matching Alerts at now.
func (r Rule) ActiveAt(now time.Time) bool { return r.State(now) == v1.SilenceActive }

// Next is when the Silence next changes state after now; zero when never.
func (r Rule) Next(now time.Time) time.Time {
	switch r.State(now) {
	case v1.SilencePending:
		return r.Start
	case v1.SilenceActive:
		return r.End
	}
	return time.Time{}
}

// Matches reports whether every matcher matches ls, whatever the time.
func (r Rule) Matches(ls model.LabelSet) bool {
	return r.Invalid == nil && r.matchers.Matches(ls)
}

// Decision is what the Silences of its namespace mean for one Alert at a
// moment.
type Decision struct {
	// Active are the Silences silencing the Alert now, the one ending last
	// first (then by name).
	Active []*v1.Silence
	// Next is when a matching Silence starts or ends; zero when none will.
	Next time.Time
}

// Decide says which rules silence a at now, and when that may change.
func Decide(a *v1.Alert, rules []Rule, now time.Time) Decision {
	var d Decision
	var active []Rule
	ls := Labels(a)
	for _, r := range rules {
		if !r.Matches(ls) {
			continue
		}
		if t := r.Next(now); !t.IsZero() && (d.Next.IsZero() || t.Before(d.Next)) {
			d.Next = t
		}
		if r.ActiveAt(now) {
			active = append(active, r)
		}
	}
	slices.SortFunc(active, func(x, y Rule) int {
		if c := y.End.Compare(x.End); c != 0 {
			return c
		}
		return cmp.Compare(x.Silence.Name, y.Silence.Name)
	})
	for _, r := range active {
		d.Active = append(d.Active, r.Silence)
	}
	return d
}

// Message is the Silenced condition's message: it names the Silence that
// ends last and when, and how many others also silence the Alert.
func (d Decision) Message() string {
	if len(d.Active) == 0 {
		return ""
	}
	s := d.Active[0]
	msg := fmt.Sprintf("silenced by Silence %s until %s", s.Name, s.Spec.EndsAt.UTC().Format(time.RFC3339))
	if n := len(d.Active) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return msg
}

// Silenced reports whether the Alert carries Silenced=True, the operator's
// last decision: what the claim rule, conversion and notifications obey.
func Silenced(s *v1.AlertStatus) bool {
	return meta.IsStatusConditionTrue(s.Conditions, v1.AlertConditionSilenced)
}

// SilencedBy is the message of the Alert's Silenced condition while it is
// True ("silenced by Silence NAME until T"), else "".
func SilencedBy(s *v1.AlertStatus) string {
	c := meta.FindStatusCondition(s.Conditions, v1.AlertConditionSilenced)
	if c == nil || c.Status != metav1.ConditionTrue {
		return ""
	}
	return c.Message
}

// SetCondition moves the Alert's Silenced condition to what d says at now:
// True naming the Silence while one is active (only on an Alert still in
// play, or one already silenced), False once none is, absent on an Alert
// never silenced. It reports whether anything changed.
func SetCondition(a *v1.Alert, d Decision, now time.Time) bool {
	cur := meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionSilenced)
	var want metav1.Condition
	switch {
	case len(d.Active) > 0 && (a.Status.Phase.Absorbing() || (cur != nil && cur.Status == metav1.ConditionTrue)):
		want = metav1.Condition{Type: v1.AlertConditionSilenced, Status: metav1.ConditionTrue,
			Reason: v1.ReasonSilenceActive, Message: d.Message()}
	case len(d.Active) == 0 && cur != nil && cur.Status == metav1.ConditionTrue:
		want = metav1.Condition{Type: v1.AlertConditionSilenced, Status: metav1.ConditionFalse,
			Reason: v1.ReasonSilenceEnded, Message: "no active Silence matches the Alert"}
	default:
		return false
	}
	want.ObservedGeneration = a.Generation
	want.LastTransitionTime = metav1.NewTime(now)
	if cur != nil && cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message &&
		cur.ObservedGeneration == want.ObservedGeneration {
		return false
	}
	meta.SetStatusCondition(&a.Status.Conditions, want)
	return true
}

// StateOf is where s stands at now for a reader without the namespace's
// policy (the CLI, the dashboard): Invalid when the operator judged this
// generation so (its Accepted condition says why), else from the window,
// which needs no operator to be right.
func StateOf(s *v1.Silence, now time.Time) v1.SilenceState {
	if s.Status.State == v1.SilenceInvalid && s.Status.ObservedGeneration == s.Generation {
		return v1.SilenceInvalid
	}
	return Judge(s, AbsoluteMaxDuration).State(now)
}
