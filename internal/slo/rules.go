package slo

import (
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"

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
// of alerting rules per objective, in Prometheus's own types.
func RuleGroups(p *v1.SLOPolicy) ([]rulefmt.RuleGroup, error) {
	objectives, err := ParseBudgetObjectives(p)
	if err != nil {
		return nil, err
	}
	if len(objectives) == 0 {
		return nil, fmt.Errorf("SLOPolicy %s/%s has no error-budget objective (spec.objectives.availability or .latency)", p.Namespace, p.Name)
	}
	var groups []rulefmt.RuleGroup
	for i := range objectives {
		o := &objectives[i]
		labels := map[string]string{"slopolicy": p.Name, "namespace": p.Namespace, "objective": o.Name, "service": p.Spec.Service, "env": p.Spec.Env}
		rec := rulefmt.RuleGroup{Name: fmt.Sprintf("slo-%s-%s-%s-recording", p.Namespace, p.Name, o.Name)}
		for _, w := range append(o.AlertWindows(), o.WindowName) {
			rec.Rules = append(rec.Rules, rulefmt.Rule{Record: RecordPrefix + string(w), Expr: o.ErrorRatioQuery(w), Labels: labels})
		}
		alerts := rulefmt.RuleGroup{Name: fmt.Sprintf("slo-%s-%s-%s-alerts", p.Namespace, p.Name, o.Name)}
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
			alerts.Rules = append(alerts.Rules, rulefmt.Rule{
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

// RulesYAML is the policy's rules as a prometheus-operator PrometheusRule,
// checked by Prometheus's own rule-file parser first.
func RulesYAML(p *v1.SLOPolicy) ([]byte, error) {
	groups, err := RuleGroups(p)
	if err != nil {
		return nil, err
	}
	if _, err := RuleFile(groups); err != nil {
		return nil, err
	}
	pr := monitoringv1.PrometheusRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: monitoringv1.SchemeGroupVersion.String(), Kind: monitoringv1.PrometheusRuleKind},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name + "-slo", Namespace: p.Namespace},
	}
	for _, g := range groups {
		mg := monitoringv1.RuleGroup{Name: g.Name}
		for _, r := range g.Rules {
			mg.Rules = append(mg.Rules, monitoringv1.Rule{Record: r.Record, Alert: r.Alert, Expr: intstr.FromString(r.Expr),
				Labels: r.Labels, Annotations: r.Annotations})
		}
		pr.Spec.Groups = append(pr.Spec.Groups, mg)
	}
	return k8syaml.Marshal(pr)
}

// RuleFileYAML is the policy's rules as a Prometheus rule file.
func RuleFileYAML(p *v1.SLOPolicy) ([]byte, error) {
	groups, err := RuleGroups(p)
	if err != nil {
		return nil, err
	}
	return RuleFile(groups)
}

// RuleFile is groups as a Prometheus rule file, refused unless Prometheus's
// parser (the one `promtool check rules` and rule loading use) accepts it
// with the classic metric and label names, which every Prometheus loads
// (UTF-8 names need Prometheus 3).
func RuleFile(groups []rulefmt.RuleGroup) ([]byte, error) {
	out, err := yaml.Marshal(rulefmt.RuleGroups{Groups: groups})
	if err != nil {
		return nil, err
	}
	if _, errs := rulefmt.Parse(out, false, model.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
		return nil, fmt.Errorf("the generated rules are not a valid Prometheus rule file: %w", errors.Join(errs...))
	}
	return out, nil
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
