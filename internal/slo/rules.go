package slo

import (
	"fmt"
	"math/big"
	"strings"

	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo/budget"
)

// Rules for Prometheus: the same math as the operator's evaluation, as
// recording rules (the error ratio of each objective per window) and
// multiwindow, multi-burn-rate alerting rules, in the shape Sloth and Pyrra
// generate. Teams that want evaluation inside Prometheus load them; the
// operator's own slo_burn Alerts do not need them.

// RecordPrefix starts the recorded series' names: slo:error_ratio:rate5m.
const RecordPrefix = "slo:error_ratio:rate"

// BurnAlertName is the alerting rules' alertname.
const BurnAlertName = "SLOErrorBudgetBurn"

// Rule is one Prometheus recording or alerting rule.
type Rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RuleGroup is a Prometheus rule group.
type RuleGroup struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// PrometheusRule is the prometheus-operator object carrying the groups.
type PrometheusRule struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   map[string]string `json:"metadata"`
	Spec       struct {
		Groups []RuleGroup `json:"groups"`
	} `json:"spec"`
}

// AlertmanagerSeverity is the severity label of a condition's alerting
// rule, which alertbridge's Alertmanager intake maps back to the severity
// the operator gives its own slo_burn Alerts (critical P1, warning P3).
func AlertmanagerSeverity(c v1.BurnCondition) string {
	if c == v1.BurnPage {
		return "critical"
	}
	return "warning"
}

// RuleGroups are the policy's rules: one group of recording rules and one
// of alerting rules per objective.
func RuleGroups(p *v1.SLOPolicy) ([]RuleGroup, error) {
	objectives, err := ParseBudgetObjectives(p)
	if err != nil {
		return nil, err
	}
	if len(objectives) == 0 {
		return nil, fmt.Errorf("SLOPolicy %s/%s has no error-budget objective (spec.objectives.availability or .latency)", p.Namespace, p.Name)
	}
	var groups []RuleGroup
	for i := range objectives {
		o := &objectives[i]
		labels := map[string]string{"slopolicy": p.Name, "namespace": p.Namespace, "objective": o.Name, "service": p.Spec.Service, "env": p.Spec.Env}
		rec := RuleGroup{Name: fmt.Sprintf("slo-%s-%s-%s-recording", p.Namespace, p.Name, o.Name)}
		for _, w := range append(o.AlertWindows(), o.WindowName) {
			rec.Rules = append(rec.Rules, Rule{Record: RecordPrefix + string(w), Expr: o.ErrorRatioQuery(w), Labels: labels})
		}
		alerts := RuleGroup{Name: fmt.Sprintf("slo-%s-%s-%s-alerts", p.Namespace, p.Name, o.Name)}
		sel := fmt.Sprintf(`{slopolicy=%q,namespace=%q,objective=%q}`, p.Name, p.Namespace, o.Name)
		for _, c := range o.Conditions {
			if !c.Alert {
				continue
			}
			var ors []string
			for _, w := range c.Windows {
				t := exactDecimal(budget.Threshold(w.Factor, o.Target))
				ors = append(ors, fmt.Sprintf("(%s%s%s > %s and %s%s%s > %s)", RecordPrefix, w.LongName, sel, t, RecordPrefix, w.ShortName, sel, t))
			}
			al := map[string]string{"burn": string(c.Name), "severity": AlertmanagerSeverity(c.Name)}
			for k, v := range labels {
				al[k] = v
			}
			alerts.Rules = append(alerts.Rules, Rule{
				Alert:  BurnAlertName,
				Expr:   strings.Join(ors, " or "),
				Labels: al,
				Annotations: map[string]string{
					"summary": fmt.Sprintf("%s: the %s error budget (target %s%% over %s) is burning (%s)",
						p.Spec.Service, o.Name, FormatDecimal(o.Target), o.WindowName, c.Name),
				},
			})
		}
		groups = append(groups, rec, alerts)
	}
	return groups, nil
}

// RulesYAML is the policy's rules as a PrometheusRule object.
func RulesYAML(p *v1.SLOPolicy) ([]byte, error) {
	groups, err := RuleGroups(p)
	if err != nil {
		return nil, err
	}
	pr := PrometheusRule{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule",
		Metadata: map[string]string{"name": p.Name + "-slo", "namespace": p.Namespace}}
	pr.Spec.Groups = groups
	return yaml.Marshal(pr)
}

// RuleFileYAML is the policy's rules as a Prometheus rule file.
func RuleFileYAML(p *v1.SLOPolicy) ([]byte, error) {
	groups, err := RuleGroups(p)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(map[string][]RuleGroup{"groups": groups})
}

// exactDecimal prints r without rounding a small threshold to 0 (targets
// have up to 6 fractional digits, factors up to 6).
func exactDecimal(r *big.Rat) string {
	s := r.FloatString(15)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
