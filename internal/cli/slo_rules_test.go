package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/slo"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func TestSLORules(t *testing.T) {
	gateEnv(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), gateK8s, "cli-")
	instant := policy(t, ns, "instant", v1.GateStrict)
	if code, _, errOut := runGateCLI(t, ns, "slo", "rules", instant.Name); code != cli.ExitUsage || !strings.Contains(errOut, "no error-budget objective") {
		t.Fatalf("a policy without objectives: exit %d, %q", code, errOut)
	}

	p := policy(t, ns, "budget", v1.GateStrict)
	p.Spec.Objectives.Availability = &v1.AvailabilityObjective{BudgetObjective: v1.BudgetObjective{Target: "99.9"}}
	if err := gateK8s.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runGateCLI(t, ns, "slo", "rules", p.Name)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var pr monitoringv1.PrometheusRule
	if err := yaml.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	want, err := slo.RulesYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) || pr.Kind != "PrometheusRule" || !strings.Contains(out, slo.BurnAlertName) {
		t.Fatalf("slo rules printed:\n%s", out)
	}
	if code, out, _ := runGateCLI(t, ns, "slo", "rules", p.Name, "--rule-file"); code != 0 || !strings.HasPrefix(out, "groups:") {
		t.Fatalf("--rule-file: exit %d:\n%s", code, out)
	}
}
