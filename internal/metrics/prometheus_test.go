package metrics_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/alertbridge/alertbridge/internal/installer"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

func strict(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "prometheus", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s is not a valid %T: %v", file, into, err)
	}
}

// TestServiceMonitor decodes config/prometheus/servicemonitor.yaml with
// prometheus-operator's own Go types, refusing unknown fields, and checks
// it scrapes the metrics Service's port of the operator's pods.
func TestServiceMonitor(t *testing.T) {
	var sm monitoringv1.ServiceMonitor
	strict(t, "servicemonitor.yaml", &sm)
	var svc corev1.Service
	strict(t, "metrics_service.yaml", &svc)
	if sm.Kind != monitoringv1.ServiceMonitorsKind || sm.APIVersion != monitoringv1.SchemeGroupVersion.String() {
		t.Fatalf("%s %s", sm.APIVersion, sm.Kind)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, which the metrics Service lacks", k, v)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
		t.Errorf("the ServiceMonitor must scrape the Service's port %q (the container's metrics port)", svc.Spec.Ports[0].Name)
	}
	ep := sm.Spec.Endpoints[0]
	if err := ep.Validate(); err != nil {
		t.Errorf("endpoint: %v", err)
	}
	if ep.Scheme == nil || *ep.Scheme != "https" {
		t.Errorf("the operator serves /metrics over HTTPS only")
	}
	// The Service selects the operator's pods (config/manager).
	objs, err := testenv.Build(filepath.Join(testenv.Root(), testenv.DefaultInstall))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			labels, _, _ := unstructuredLabels(u.Object)
			for k, v := range svc.Spec.Selector {
				if labels[k] != v {
					t.Errorf("the metrics Service selects %s=%s, which the operator's pods lack", k, v)
				}
			}
		}
	}
}

func unstructuredLabels(obj map[string]any) (map[string]string, bool, error) {
	out := map[string]string{}
	spec, _ := obj["spec"].(map[string]any)
	tpl, _ := spec["template"].(map[string]any)
	md, _ := tpl["metadata"].(map[string]any)
	ls, _ := md["labels"].(map[string]any)
	for k, v := range ls {
		out[k], _ = v.(string)
	}
	return out, len(out) > 0, nil
}

// TestPrometheusRule decodes config/prometheus/prometheusrule.yaml with
// prometheus-operator's Go types (strictly), parses every expression with
// Prometheus's own PromQL parser, and checks that each alertbridge metric
// named exists and that the alerts docs/operations.md promises are there.
func TestPrometheusRule(t *testing.T) {
	var pr monitoringv1.PrometheusRule
	strict(t, "prometheusrule.yaml", &pr)
	if pr.Kind != monitoringv1.PrometheusRuleKind {
		t.Fatalf("kind %s", pr.Kind)
	}
	registered := registeredMetrics(t)
	alerts := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr.String())
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			if expr.Type() != parser.ValueTypeVector {
				t.Errorf("%s: the expression is a %s, want a vector", r.Alert, expr.Type())
			}
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				vs, ok := node.(*parser.VectorSelector)
				if !ok || !strings.HasPrefix(vs.Name, "alertbridge_") {
					return nil
				}
				base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(vs.Name, "")
				if !registered[base] {
					t.Errorf("%s queries %s, which the operator does not export", r.Alert, vs.Name)
				}
				return nil
			})
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s needs a severity label, a summary and a description", r.Alert)
			}
		}
	}
	for _, want := range []string{"AlertbridgeOperatorDown", "AlertbridgeMirrorLagging", "AlertbridgeMirrorDown", "AlertbridgeGateStale", "AlertbridgeIntakeRejecting"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestMonitoringComponents: config/prometheus and config/grafana compose
// with config/default, and the dashboard's ConfigMap carries the sidecar's
// label and the dashboard itself.
func TestMonitoringComponents(t *testing.T) {
	data, err := installer.Build(installer.Options{Root: testenv.Root(), Components: []string{"config/prometheus", "config/grafana"}})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "grafana", "alertbridge.json"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, u := range objs {
		kinds[u.GetKind()] = true
		// config/default's own ConfigMap names the operator to the
		// admission policies; the dashboard's is the other one.
		if u.GetKind() != "ConfigMap" || u.GetName() == "alertbridge-operator" {
			continue
		}
		if u.GetLabels()["grafana_dashboard"] != "1" || u.GetNamespace() != installer.DefaultNamespace {
			t.Errorf("ConfigMap %s: labels %v in %q, want grafana_dashboard=1 in the operator's namespace", u.GetName(), u.GetLabels(), u.GetNamespace())
		}
		if got, _ := u.Object["data"].(map[string]any)["alertbridge.json"].(string); got != string(dashboard) {
			t.Errorf("ConfigMap %s does not carry config/grafana/alertbridge.json", u.GetName())
		}
	}
	for _, k := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if !kinds[k] {
			t.Errorf("no %s", k)
		}
	}
}
