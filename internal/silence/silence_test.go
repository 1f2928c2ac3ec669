package silence_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/silence"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// firing is a New P2 high_latency Alert of the gateway in prod, as the
// operator sees it before a Silence is judged against it.
func firing() *testbuild.AlertWrapper {
	return testbuild.MakeAlert("a", "prod").Env("prod").Kind("high_latency").Severity(v1.SeverityP2).Title("p95").Phase(v1.AlertNew)
}

func silenceOf(t *testing.T, matchers ...string) *v1.Silence {
	t.Helper()
	ms, err := silence.Parse(matchers)
	if err != nil {
		t.Fatalf("Parse(%q): %v", matchers, err)
	}
	return testbuild.MakeSilence("s", "prod").Created(t0).Matchers(ms...).EndsAt(t0.Add(time.Hour)).Comment("test").CreatedBy("alice").Obj()
}

// TestMatchingLikeAlertmanager runs the semantics Alertmanager documents for
// matchers (prometheus.io/docs/alerting/latest/configuration/#matcher and
// the amtool README) through the matchers as the CLI parses them and as the
// operator applies them.
func TestMatchingLikeAlertmanager(t *testing.T) {
	for _, tc := range []struct {
		name     string
		matchers []string
		labels   map[string]string // spec.labels of the Alert
		want     bool
	}{
		// Equality.
		{"equal matches the value", []string{`service=gateway`}, nil, true},
		{"equal with quotes", []string{`service="gateway"`}, nil, true},
		{"equal is case-sensitive", []string{`service="Gateway"`}, nil, false},
		{"equal takes regex characters literally", []string{`route="/v1/.*"`}, map[string]string{"route": "/v1/chat"}, false},
		{"equal on the literal value with regex characters", []string{`route="/v1/.*"`}, map[string]string{"route": "/v1/.*"}, true},
		{"every matcher must match (AND)", []string{`service="gateway"`, `env="staging"`}, nil, false},
		{"several matchers in braces", []string{`{service="gateway", env="prod"}`}, nil, true},
		// An absent label has the value "".
		{`label="" matches an absent label`, []string{`service="gateway"`, `route=""`}, nil, true},
		{`label="" matches an empty label`, []string{`service="gateway"`, `route=""`}, map[string]string{"route": ""}, true},
		{`label="" does not match a set label`, []string{`service="gateway"`, `route=""`}, map[string]string{"route": "/v1"}, false},
		{`label!="" matches a set label`, []string{`route!=""`}, map[string]string{"route": "/v1"}, true},
		{`label!="" does not match an absent label`, []string{`route!=""`}, nil, false},
		{"!= matches an absent label", []string{`service="gateway"`, `route!="/healthz"`}, nil, true},
		{"!= does not match the value", []string{`service="gateway"`, `route!="/healthz"`}, map[string]string{"route": "/healthz"}, false},
		{"!= matches another value", []string{`service="gateway"`, `route!="/healthz"`}, map[string]string{"route": "/v1"}, true},
		{"equal does not match an absent label", []string{`route="/v1"`}, nil, false},
		// Regular expressions are anchored at both ends.
		{`=~"prod" does not match production`, []string{`stage=~"prod"`}, map[string]string{"stage": "production"}, false},
		{`=~"prod" matches prod`, []string{`stage=~"prod"`}, map[string]string{"stage": "prod"}, true},
		{`=~"prod.*" matches production`, []string{`stage=~"prod.*"`}, map[string]string{"stage": "production"}, true},
		{"=~ alternation", []string{`env=~"prod|staging"`}, nil, true},
		{"=~ alternation is anchored as a whole", []string{`stage=~"prod|staging"`}, map[string]string{"stage": "prod-eu"}, false},
		{`=~".*" matches an absent label`, []string{`service="gateway"`, `route=~".*"`}, nil, true},
		{`=~".+" does not match an absent label`, []string{`route=~".+"`}, nil, false},
		{"!~ excludes what the regex matches", []string{`service="gateway"`, `env!~"prod|staging"`}, nil, false},
		{"!~ keeps what it does not match", []string{`service="gateway"`, `stage!~"prod|staging"`}, map[string]string{"stage": "dev"}, true},
		{"!~ matches an absent label", []string{`service="gateway"`, `route!~"/v1/.*"`}, nil, true},
		{"!~ is anchored too", []string{`service="gateway"`, `stage!~"prod"`}, map[string]string{"stage": "production"}, true},
		{"unquoted regex (classic syntax, as amtool accepts)", []string{`env=~prod|staging`}, nil, true},
		// UTF-8 and escaping.
		{"UTF-8 value", []string{`team="Zürich 🚨"`}, map[string]string{"team": "Zürich 🚨"}, true},
		{"UTF-8 label name, quoted", []string{`"service.name"="gateway"`}, map[string]string{"service.name": "gateway"}, true},
		{"UTF-8 regex", []string{`team=~"Zür.*"`}, map[string]string{"team": "Zürich"}, true},
		{"escaped quotes in the value", []string{`title="say \"hi\""`}, map[string]string{"title": `say "hi"`}, true},
		{"escaped backslash", []string{`path="C:\\temp"`}, map[string]string{"path": `C:\temp`}, true},
		{"comma inside quotes", []string{`{hosts="a,b", service="gateway"}`}, map[string]string{"hosts": "a,b"}, true},
		// The Alert's own fields.
		{"alertname is the kind", []string{`alertname="high_latency"`}, nil, true},
		{"kind", []string{`kind=~"high_.*"`}, nil, true},
		{"severity", []string{`severity=~"P[0-2]"`}, nil, true},
		{"namespace", []string{`namespace="prod"`}, nil, true},
		{"the Alert's service wins over a label of that name", []string{`service="other"`}, map[string]string{"service": "other"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := silence.Judge(silenceOf(t, tc.matchers...), 0)
			if r.Invalid != nil {
				t.Fatalf("invalid: %s", r.Invalid.Message)
			}
			a := firing().LabelMap(tc.labels).Obj()
			got := r.Matches(silence.Labels(a))
			if got != tc.want {
				t.Errorf("%q on labels %v: matched %v, want %v", tc.matchers, silence.Labels(a), got, tc.want)
			}
			d := silence.Decide(a, []silence.Rule{r}, t0.Add(time.Minute))
			if (len(d.Active) == 1) != tc.want {
				t.Errorf("Decide: active %d, want match %v", len(d.Active), tc.want)
			}
		})
	}
}

func TestParseRefusesWhatAlertmanagerRefuses(t *testing.T) {
	for _, in := range []string{`service`, `=gateway`, `service=="x"`, `service="unterminated`, `a="b" c="d"`} {
		if _, err := silence.Parse([]string{in}); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestStringRoundTrips(t *testing.T) {
	in := []string{`service="gateway"`, `env=~"prod|staging"`, `route!="/healthz"`, `title!~"say \"hi\".*"`, `"service.name"="x"`}
	ms, err := silence.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	s := silence.String(ms)
	if want := `{service="gateway", env=~"prod|staging", route!="/healthz", title!~"say \"hi\".*", service.name="x"}`; s != want {
		t.Fatalf("String = %s, want %s", s, want)
	}
	again, err := silence.Parse([]string{s})
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	if silence.String(again) != s {
		t.Fatalf("round trip: %s became %s", s, silence.String(again))
	}
}

func TestJudge(t *testing.T) {
	bad := silenceOf(t, `service="gateway"`)
	bad.Spec.Matchers = append(bad.Spec.Matchers, v1.SilenceMatcher{Name: "route", Operator: v1.MatchRegexp, Value: "(unclosed"})
	if r := silence.Judge(bad, 0); r.Invalid == nil || r.Invalid.Reason != v1.ReasonInvalidMatcher ||
		!strings.Contains(r.Invalid.Message, "spec.matchers[1].value") {
		t.Errorf("a bad regex: %+v", r.Invalid)
	}
	empty := silenceOf(t, `route=~".*"`, `env=""`)
	if r := silence.Judge(empty, 0); r.Invalid == nil || r.Invalid.Reason != v1.ReasonInvalidMatcher {
		t.Errorf("matchers that all match the empty string: %+v", r.Invalid)
	}
	long := silenceOf(t, `service="gateway"`)
	long.Spec.EndsAt = metav1.NewTime(t0.Add(8 * 24 * time.Hour))
	if r := silence.Judge(long, 0); r.Invalid == nil || r.Invalid.Reason != v1.ReasonTooLong {
		t.Errorf("8 days under the default 7: %+v", r.Invalid)
	}
	if r := silence.Judge(long, 10*24*time.Hour); r.Invalid != nil {
		t.Errorf("8 days under a policy of 10: %+v", r.Invalid)
	}
	if r := silence.Judge(silenceOf(t, `service="gateway"`), 30*time.Minute); r.Invalid == nil {
		t.Error("1h under a policy of 30m must be invalid")
	}
}

func TestStatesAndTimers(t *testing.T) {
	s := silenceOf(t, `service="gateway"`)
	start := t0.Add(10 * time.Minute)
	s.Spec.StartsAt = &metav1.Time{Time: start}
	r := silence.Judge(s, 0)
	a := firing().Obj()
	for _, tc := range []struct {
		at     time.Time
		state  v1.SilenceState
		active bool
		next   time.Time
	}{
		{t0, v1.SilencePending, false, start},
		{start, v1.SilenceActive, true, s.Spec.EndsAt.Time},
		{s.Spec.EndsAt.Add(-time.Nanosecond), v1.SilenceActive, true, s.Spec.EndsAt.Time},
		{s.Spec.EndsAt.Time, v1.SilenceExpired, false, time.Time{}},
	} {
		if got := r.State(tc.at); got != tc.state {
			t.Errorf("at %s: state %s, want %s", tc.at, got, tc.state)
		}
		d := silence.Decide(a, []silence.Rule{r}, tc.at)
		if (len(d.Active) > 0) != tc.active || !d.Next.Equal(tc.next) {
			t.Errorf("at %s: active %d next %s, want %v %s", tc.at, len(d.Active), d.Next, tc.active, tc.next)
		}
	}
	// Without startsAt a Silence starts at its creation.
	s.Spec.StartsAt = nil
	if got := silence.Judge(s, 0).State(t0); got != v1.SilenceActive {
		t.Errorf("without startsAt at creation: %s", got)
	}
}

func TestConditionNamesTheSilenceEndingLast(t *testing.T) {
	early, late := silenceOf(t, `service="gateway"`), silenceOf(t, `env="prod"`)
	early.Name, late.Name = "early", "late"
	late.Spec.EndsAt = metav1.NewTime(t0.Add(2 * time.Hour))
	a := firing().Obj()
	now := t0.Add(time.Minute)
	d := silence.Decide(a, silence.JudgeAll([]v1.Silence{*early, *late}, 0), now)
	if !silence.SetCondition(a, d, now) {
		t.Fatal("no change on a silenced Alert")
	}
	if got, want := silence.SilencedBy(&a.Status), "silenced by Silence late until 2026-11-30T12:00:00Z (and 1 more)"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if silence.SetCondition(a, d, now.Add(time.Second)) {
		t.Error("the same decision wrote again")
	}
	// Once none is active the condition turns False; an Alert never
	// silenced gets none.
	if !silence.SetCondition(a, silence.Decision{}, now) || silence.Silenced(&a.Status) {
		t.Errorf("not cleared: %+v", a.Status.Conditions)
	}
	fresh := firing().Obj()
	if silence.SetCondition(fresh, silence.Decision{}, now) || len(fresh.Status.Conditions) != 0 {
		t.Errorf("an Alert never silenced got a condition: %+v", fresh.Status.Conditions)
	}
	// An Acked Alert is not newly silenced.
	acked := firing().Phase(v1.AlertAcked).Obj()
	if silence.SetCondition(acked, d, now) {
		t.Error("an Acked Alert was newly silenced")
	}
}
