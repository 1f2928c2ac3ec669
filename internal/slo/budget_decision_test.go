package slo

import (
	"math/big"
	"strings"
	"testing"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

func TestDecideWithBudgets(t *testing.T) {
	objective := &Objective{Name: v1.ObjectiveAvailability, Target: big.NewRat(999, 10)}
	eval := func(errorRatio string, burning ...v1.BurnCondition) []BudgetEval {
		ev := BudgetEval{Objective: objective, Burning: burning}
		if errorRatio != "" {
			ev.ErrorRatio, _ = new(big.Rat).SetString(errorRatio)
		}
		return []BudgetEval{ev}
	}
	ten := big.NewRat(10, 1)
	slow := Measurement{Value: big.NewRat(1, 1)} // 1s p95 against 300ms
	for _, tc := range []struct {
		name       string
		in         Input
		decision   v1.GateDecision
		reason     string
		msgContain string
	}{
		{"half the budget left, nothing burning", Input{Observed: Observation{Budgets: eval("0.0005")}, MinBudgetPercent: ten, BlockOnBurn: v1.BurnPage},
			v1.DecisionAllow, v1.ReasonWithinObjectives, "within objectives"},
		{"5% left is below 10%", Input{Observed: Observation{Budgets: eval("0.00095")}, MinBudgetPercent: ten, BlockOnBurn: v1.BurnPage},
			v1.DecisionBlock, v1.ReasonErrorBudgetLow, "availability error budget 5% left < minErrorBudgetPercent 10"},
		{"an overspent budget", Input{Observed: Observation{Budgets: eval("0.002")}, MinBudgetPercent: new(big.Rat), BlockOnBurn: v1.BurnOff},
			v1.DecisionBlock, v1.ReasonErrorBudgetLow, "-100% left"},
		{"a page blocks on blockOnBurn page", Input{Observed: Observation{Budgets: eval("0.0005", v1.BurnPage)}, BlockOnBurn: v1.BurnPage},
			v1.DecisionBlock, v1.ReasonErrorBudgetBurning, "burning (page)"},
		{"a ticket does not block on blockOnBurn page", Input{Observed: Observation{Budgets: eval("0.0005", v1.BurnTicket)}, BlockOnBurn: v1.BurnPage},
			v1.DecisionAllow, v1.ReasonWithinObjectives, ""},
		{"a ticket blocks on blockOnBurn ticket", Input{Observed: Observation{Budgets: eval("0.0005", v1.BurnTicket)}, BlockOnBurn: v1.BurnTicket},
			v1.DecisionBlock, v1.ReasonErrorBudgetBurning, "burning (ticket)"},
		{"a page does not block on blockOnBurn off", Input{Observed: Observation{Budgets: eval("0.0005", v1.BurnPage)}, BlockOnBurn: v1.BurnOff},
			v1.DecisionAllow, v1.ReasonWithinObjectives, ""},
		{"the instant check blocked first, the burn is in the message",
			Input{Objectives: Objectives{LatencyP95Ms: big.NewRat(300, 1)}, Observed: Observation{Latency: slow, Budgets: eval("0.0005", v1.BurnPage)}, BlockOnBurn: v1.BurnPage},
			v1.DecisionBlock, v1.ReasonLatencyP95Exceeded, "burning (page)"},
		{"the budget blocked before the open incident", Input{Observed: Observation{Budgets: eval("0.00095")}, MinBudgetPercent: ten,
			Incident: &OpenIncident{Name: "inc-1", Severity: v1.SeverityP1}},
			v1.DecisionBlock, v1.ReasonErrorBudgetLow, "Incident inc-1 (P1) is open"},
		{"no data for a gated budget follows gate.noData", Input{NoData: v1.NoDataBlock, Observed: Observation{Budgets: eval("")}, MinBudgetPercent: ten},
			v1.DecisionBlock, v1.ReasonNoData, "availability error budget"},
		{"no data allowed", Input{NoData: v1.NoDataAllow, Observed: Observation{Budgets: eval("")}, MinBudgetPercent: ten},
			v1.DecisionAllow, v1.ReasonNoData, ""},
		{"Warn mode allows with the reason", Input{Mode: v1.GateWarn, Observed: Observation{Budgets: eval("0.0005", v1.BurnPage)}, BlockOnBurn: v1.BurnPage},
			v1.DecisionWarn, v1.ReasonErrorBudgetBurning, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Decide(tc.in)
			if res.Decision != tc.decision || res.Reason != tc.reason || !strings.Contains(res.Message, tc.msgContain) {
				t.Errorf("Decide = %s %s %q; want %s %s containing %q", res.Decision, res.Reason, res.Message, tc.decision, tc.reason, tc.msgContain)
			}
		})
	}
}
