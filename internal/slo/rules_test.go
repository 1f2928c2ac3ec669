package slo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/rulefmt"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo"
	"github.com/alertbridge/alertbridge/test/integration/promtest"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// shortWindows are the workbook's conditions scaled down to seconds, so a
// real Prometheus fills every window within a minute.
func shortWindowPolicy(name string) *v1.SLOPolicy {
	return testbuild.MakeSLOPolicy(name, "shop").Service(name).Env("prod").NoObjectives().Availability("99.9", "10m").
		PageWindows(v1.BurnRateWindow{Long: "60s", Short: "10s", Factor: "14.4"}, v1.BurnRateWindow{Long: "2m", Short: "20s", Factor: "6"}).
		TicketWindows(v1.BurnRateWindow{Long: "3m", Short: "30s", Factor: "3"}, v1.BurnRateWindow{Long: "5m", Short: "1m", Factor: "1"}).
		Obj()
}

func TestRulesYAMLIsAPrometheusRule(t *testing.T) {
	p := shortWindowPolicy("checkout")
	p.Spec.Alerting = nil
	p.Spec.Objectives.Availability.Window = "28d"
	out, err := slo.RulesYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	var pr monitoringv1.PrometheusRule
	if err := yaml.Unmarshal(out, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) != 2 {
		t.Fatalf("got %s with %d groups:\n%s", pr.Kind, len(pr.Spec.Groups), out)
	}
	var records []string
	for _, r := range pr.Spec.Groups[0].Rules {
		records = append(records, r.Record)
	}
	// The workbook's windows and the budget's.
	want := []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d", "28d"}
	for i, w := range want {
		want[i] = slo.RecordPrefix + w
	}
	if !slices.Equal(records, want) {
		t.Errorf("records = %v, want %v", records, want)
	}
	page := pr.Spec.Groups[1].Rules[0]
	wantExpr := `(slo:error_ratio:rate1h{slopolicy="checkout",namespace="shop",objective="availability"} > 0.0144 and ` +
		`slo:error_ratio:rate5m{slopolicy="checkout",namespace="shop",objective="availability"} > 0.0144) or ` +
		`(slo:error_ratio:rate6h{slopolicy="checkout",namespace="shop",objective="availability"} > 0.006 and ` +
		`slo:error_ratio:rate30m{slopolicy="checkout",namespace="shop",objective="availability"} > 0.006)`
	if page.Expr.String() != wantExpr || page.Labels["severity"] != "critical" {
		t.Errorf("page rule = %+v\nwant expr %s", page, wantExpr)
	}
}

// A rule Prometheus would refuse to load is refused before it is printed.
func TestRuleFileRefusesWhatPrometheusWould(t *testing.T) {
	for name, rule := range map[string]rulefmt.Rule{
		"expression":  {Record: "slo:error_ratio:rate5m", Expr: "sum(rate(requests_total[5m])"},
		"record name": {Record: "slo error ratio", Expr: "vector(1)"},
		"both kinds":  {Record: "slo:x", Alert: "X", Expr: "vector(1)"},
	} {
		_, err := slo.RuleFile([]rulefmt.RuleGroup{{Name: "g", Rules: []rulefmt.Rule{rule}}})
		if err == nil {
			t.Errorf("%s: a broken rule was accepted", name)
		}
	}
	if _, err := slo.RuleFile([]rulefmt.RuleGroup{{Name: "g", Rules: []rulefmt.Rule{{Record: "slo:x", Expr: "vector(1)"}}}}); err != nil {
		t.Errorf("a valid rule was refused: %v", err)
	}
}

// TestRulesMatchTheOperator loads the generated rules into a real
// Prometheus scraping synthetic counters and compares what Prometheus
// records and fires with what the operator's own evaluation computes on
// the same data: a steady 0.05% error rate (burn 0.5, nothing fires) and a
// 2% one (burn 20: page and ticket fire).
func TestRulesMatchTheOperator(t *testing.T) {
	if _, err := promtest.Binary(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	reqs := promtest.NewRequests("prod")
	reqs.Set("steady", 5)
	reqs.Set("spike", 200)
	addr, stop, err := reqs.Serve()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	policies := []*v1.SLOPolicy{shortWindowPolicy("steady"), shortWindowPolicy("spike")}
	var groups []rulefmt.RuleGroup
	for _, p := range policies {
		g, err := slo.RuleGroups(p)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g...)
	}
	file, err := slo.RuleFile(groups)
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, file)
	prom, err := promtest.StartWithRules(ctx, string(file), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Stop()
	src, err := slo.NewClient(prom.URL(), slo.Auth{}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	want := map[string][]v1.BurnCondition{"steady": nil, "spike": {v1.BurnPage, v1.BurnTicket}}
	// Until every window has data and Prometheus has evaluated its rules.
	NewWithT(t).Eventually(func() string {
		return compare(ctx, t, prom.URL(), src, policies, want)
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(BeEmpty(), "Prometheus and the operator disagree")
}

// compare says how Prometheus's recorded ratios and firing alerts differ
// from the operator's evaluation at the same instant ("" when they agree).
func compare(ctx context.Context, t *testing.T, promURL string, src slo.Source, policies []*v1.SLOPolicy, want map[string][]v1.BurnCondition) string {
	t.Helper()
	at := time.Now().Add(-2 * time.Second) // a rule evaluation has happened by then
	for _, p := range policies {
		objectives, err := slo.ParseBudgetObjectives(p)
		if err != nil {
			t.Fatal(err)
		}
		evals, err := slo.EvaluateBudgets(ctx, src, objectives, at)
		if err != nil {
			return err.Error()
		}
		ev := evals[0]
		if !slices.Equal(ev.Burning, want[p.Name]) {
			return fmt.Sprintf("operator: %s burning %v, want %v", p.Name, ev.Burning, want[p.Name])
		}
		for _, w := range append(ev.Objective.AlertWindows(), ev.Objective.WindowName) {
			q := fmt.Sprintf(`%s%s{slopolicy=%q}`, slo.RecordPrefix, w, p.Name)
			rec, ok := instant(t, promURL, q, at)
			ours := ev.Ratios[w]
			if w == ev.Objective.WindowName {
				ours = ev.ErrorRatio
			}
			if !ok || ours == nil {
				return fmt.Sprintf("%s: no data yet for %s (Prometheus %v, operator %v)", p.Name, w, ok, ours != nil)
			}
			f, _ := ours.Float64()
			if d := f - rec; d > 1e-9 || d < -1e-9 {
				return fmt.Sprintf("%s %s: Prometheus recorded %v, the operator computed %v", p.Name, w, rec, f)
			}
		}
		var firing []v1.BurnCondition
		for _, c := range []v1.BurnCondition{v1.BurnPage, v1.BurnTicket} {
			q := fmt.Sprintf(`ALERTS{alertname=%q,alertstate="firing",slopolicy=%q,burn=%q}`, slo.BurnAlertName, p.Name, c)
			if _, ok := instant(t, promURL, q, time.Now()); ok {
				firing = append(firing, c)
			}
		}
		if !slices.Equal(firing, want[p.Name]) {
			return fmt.Sprintf("Prometheus: %s firing %v, want %v", p.Name, firing, want[p.Name])
		}
	}
	return ""
}

// instant is the first sample of an instant query, if any.
func instant(t *testing.T, promURL, q string, at time.Time) (float64, bool) {
	t.Helper()
	u := promURL + "/api/v1/query?" + url.Values{"query": {q}, "time": {fmt.Sprintf("%.3f", float64(at.UnixMilli())/1000)}}.Encode()
	resp, err := http.Get(u) // #nosec G107 -- the test's own loopback Prometheus.
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var ans struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("query %s: %v: %s", q, err, body)
	}
	if len(ans.Data.Result) == 0 {
		return 0, false
	}
	s, _ := ans.Data.Result[0].Value[1].(string)
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	f, _ := r.Float64()
	return f, true
}

// checkRules runs promtool check rules when it is installed.
func checkRules(t *testing.T, file []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed; the rules are checked by Prometheus loading them")
		return
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput() // #nosec G204 -- the test's own file.
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
