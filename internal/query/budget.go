package query

import v1 "github.com/alertbridge/alertbridge/api/v1alpha1"

// BudgetInfo is one error-budget objective of a gate: how much budget is
// left and how fast it burns (as the SLOPolicy's status last said).
type BudgetInfo struct {
	Objective        string `json:"objective"`
	Target           string `json:"target"`
	Window           string `json:"window"`
	SLIPercent       string `json:"sliPercent,omitempty"`
	RemainingPercent string `json:"remainingPercent,omitempty"`
	RemainingMinutes string `json:"remainingMinutes,omitempty"`
	// BurnRate is the burn rate over the shortest alerting window: the
	// current pace (1 spends the budget exactly over the window).
	BurnRate       string   `json:"burnRate,omitempty"`
	BurnRateWindow string   `json:"burnRateWindow,omitempty"`
	Burning        []string `json:"burning,omitempty"`
}

// budgets are the error-budget objectives of a policy, for its gate line.
func budgets(p *v1.SLOPolicy) []BudgetInfo {
	var out []BudgetInfo
	for _, o := range p.Status.Objectives {
		b := BudgetInfo{
			Objective: o.Name, Target: o.Target, Window: string(o.Window), SLIPercent: o.SLIPercent,
			RemainingPercent: o.ErrorBudgetRemainingPercent, RemainingMinutes: o.ErrorBudgetRemainingMinutes,
		}
		// status lists the windows shortest first.
		if len(o.BurnRates) > 0 {
			b.BurnRate, b.BurnRateWindow = o.BurnRates[0].Rate, string(o.BurnRates[0].Window)
		}
		for _, c := range o.Burning {
			b.Burning = append(b.Burning, string(c))
		}
		out = append(out, b)
	}
	return out
}
