package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/alertbridge/alertbridge/internal/metrics"
	// The operator's controllers register controller-runtime's reconcile
	// metrics, which the dashboard shows too.
	_ "github.com/alertbridge/alertbridge/internal/operator"
)

// registeredMetrics is the name of every metric the operator's two
// programs register.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	if err := metrics.Register(nil); err != nil { // Describe never reads
		t.Fatal(err)
	}
	if err := metrics.RegisterMirror(nil); err != nil {
		t.Fatal(err)
	}
	// alertbridge serve's (the HTTP API's), which the same ServiceMonitor
	// scrapes.
	if err := metrics.RegisterAPI(); err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	descs := make(chan *prometheus.Desc)
	go func() {
		ctrlmetrics.Registry.(*prometheus.Registry).Describe(descs)
		close(descs)
	}()
	fqName := regexp.MustCompile(`fqName: "([a-z_:]+)"`)
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			registered[m[1]] = true
		}
	}
	return registered
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// TestGrafanaDashboard checks config/grafana/alertbridge.json against the
// metrics the operator registers: every alertbridge metric a panel queries
// exists, and every alertbridge metric is on some panel.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../config/grafana/alertbridge.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string         `json:"uid"`
		Panels []grafanaPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatal("the dashboard needs a uid and panels")
	}

	registered := registeredMetrics(t)

	name := regexp.MustCompile(`\b(alertbridge_[a-z_]+|controller_runtime_[a-z_]+)\b`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m, "")
				if !registered[base] {
					t.Errorf("panel %q queries %s, which the operator does not export", p.Title, m)
				}
				used[base] = true
			}
		}
	}
	for n := range registered {
		if regexp.MustCompile(`^alertbridge_`).MatchString(n) && !used[n] {
			t.Errorf("metric %s is on no panel", n)
		}
	}
}
