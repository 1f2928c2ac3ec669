package query

import (
	"testing"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func TestDashboardBudgets(t *testing.T) {
	p := testbuild.MakeSLOPolicy("checkout", "shop").Service("checkout").Env("prod").Val()
	p.Status.Objectives = []v1.ObjectiveStatus{{
		Name: v1.ObjectiveAvailability, Target: "99.9", Window: "28d", SLIPercent: "99.95",
		ErrorBudgetRemainingPercent: "50", ErrorBudgetRemainingMinutes: "20.16",
		BurnRates: []v1.BurnRateStatus{{Window: "5m", Rate: "20"}, {Window: "1h", Rate: "15"}},
		Burning:   []v1.BurnCondition{v1.BurnPage},
	}}
	plain := testbuild.MakeSLOPolicy("instant", "shop").Val()
	// The gate line of each policy, as BuildDashboard lists them.
	if g := gate(&plain); len(g.Budgets) != 0 {
		t.Fatalf("a policy without objectives has budgets %+v", g.Budgets)
	}
	want := BudgetInfo{Objective: "availability", Target: "99.9", Window: "28d", SLIPercent: "99.95",
		RemainingPercent: "50", RemainingMinutes: "20.16", BurnRate: "20", BurnRateWindow: "5m", Burning: []string{"page"}}
	got := gate(&p).Budgets
	if len(got) != 1 || got[0].Objective != want.Objective || got[0].RemainingPercent != want.RemainingPercent ||
		got[0].BurnRate != want.BurnRate || got[0].BurnRateWindow != want.BurnRateWindow || len(got[0].Burning) != 1 {
		t.Errorf("budgets %+v, want %+v", got, want)
	}
}
