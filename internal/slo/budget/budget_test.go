package budget_test

import (
	"math/big"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo/budget"
)

const day = 24 * time.Hour

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad decimal %q", s)
	}
	return r
}

func eq(t *testing.T, what string, got *big.Rat, want string) {
	t.Helper()
	if got.Cmp(rat(t, want)) != 0 {
		t.Errorf("%s = %s, want %s", what, got.FloatString(6), want)
	}
}

// The worked examples of the SRE workbook, chapter 5 "Alerting on SLOs".
func TestBudgetMinutes(t *testing.T) {
	for _, tc := range []struct {
		target string
		window time.Duration
		want   string
	}{
		{"99.9", 30 * day, "43.2"},  // "43 minutes of downtime per 30 days"
		{"99.9", 28 * day, "40.32"}, // the 4-week window
		{"99.99", 30 * day, "4.32"}, // four nines
		{"99", 30 * day, "432"},     // two nines
		{"99.95", 7 * day, "5.04"},  // a week at 99.95
		{"99.5", 1 * day, "7.2"},    // a day at 99.5
	} {
		eq(t, "Minutes("+tc.target+", "+tc.window.String()+")", budget.Minutes(rat(t, tc.target), tc.window), tc.want)
	}
}

func TestBurnRateAndConsumption(t *testing.T) {
	for _, tc := range []struct {
		name          string
		errorRatio    string
		target        string
		alert, sloWin time.Duration
		wantBurn      string
		wantConsumed  string
	}{
		// Table 5-8: the recommended page and ticket windows for 99.9%/30d.
		{"page 1h at 14.4x spends 2%", "0.0144", "99.9", time.Hour, 30 * day, "14.4", "0.02"},
		{"page 6h at 6x spends 5%", "0.006", "99.9", 6 * time.Hour, 30 * day, "6", "0.05"},
		{"ticket 1d at 3x spends 10%", "0.003", "99.9", day, 30 * day, "3", "0.1"},
		{"ticket 3d at 1x spends 10%", "0.001", "99.9", 3 * day, 30 * day, "1", "0.1"},
		// An error ratio equal to the budget burns at exactly 1 and spends
		// the whole budget over the whole window.
		{"burn 1 over the window spends it all", "0.001", "99.9", 30 * day, 30 * day, "1", "1"},
		// The steady 0.05% against 99.9% burns at half speed.
		{"0.05% errors against 99.9% burn at 0.5", "0.0005", "99.9", 28 * day, 28 * day, "0.5", "0.5"},
		// A 2% spike against 99.9% burns at 20.
		{"2% errors against 99.9% burn at 20", "0.02", "99.9", 5 * time.Minute, 28 * day, "20", "0.00248015873015873"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			burn := budget.BurnRate(rat(t, tc.errorRatio), rat(t, tc.target))
			eq(t, "BurnRate", burn, tc.wantBurn)
			got := budget.Consumed(burn, tc.alert, tc.sloWin)
			want := rat(t, tc.wantConsumed)
			d := new(big.Rat).Sub(got, want)
			if d.Abs(d).Cmp(big.NewRat(1, 1e12)) > 0 {
				t.Errorf("Consumed = %s, want %s", got.FloatString(15), tc.wantConsumed)
			}
		})
	}
}

func TestFactorFor(t *testing.T) {
	// The workbook derives the factors from the budget spent per window.
	for _, tc := range []struct {
		consumed string
		alert    time.Duration
		want     string
	}{
		{"0.02", time.Hour, "14.4"},
		{"0.05", 6 * time.Hour, "6"},
		{"0.1", day, "3"},
		{"0.1", 3 * day, "1"},
	} {
		eq(t, "FactorFor("+tc.consumed+", "+tc.alert.String()+")", budget.FactorFor(rat(t, tc.consumed), tc.alert, 30*day), tc.want)
	}
}

func TestExhaustion(t *testing.T) {
	for _, tc := range []struct {
		burn string
		want time.Duration
	}{
		{"1", 30 * day},
		{"14.4", 50 * time.Hour}, // "the budget is exhausted in 50 hours"
		{"6", 5 * day},
		{"1000", 43*time.Minute + 12*time.Second}, // a total outage spends 43.2 min of budget in 43.2 min
	} {
		got, err := budget.Exhaustion(rat(t, tc.burn), 30*day)
		if err != nil || got != tc.want {
			t.Errorf("Exhaustion(%s) = %s, %v; want %s", tc.burn, got, err, tc.want)
		}
	}
	if _, err := budget.Exhaustion(new(big.Rat), 30*day); err == nil {
		t.Error("Exhaustion(0) should fail: the budget is never spent")
	}
}

func TestRemaining(t *testing.T) {
	for _, tc := range []struct{ errorRatio, target, want string }{
		{"0", "99.9", "1"},
		{"0.0005", "99.9", "0.5"},
		{"0.001", "99.9", "0"},
		{"0.002", "99.9", "-1"},
		{"0.0001", "99", "0.99"},
	} {
		eq(t, "Remaining("+tc.errorRatio+", "+tc.target+")", budget.Remaining(rat(t, tc.errorRatio), rat(t, tc.target)), tc.want)
	}
}

func TestWindowHolds(t *testing.T) {
	ws, err := budget.Windows(nil, budget.DefaultPage)
	if err != nil {
		t.Fatal(err)
	}
	page1h := ws[0]
	target := rat(t, "99.9")
	for _, tc := range []struct {
		name        string
		long, short *big.Rat
		want        bool
	}{
		{"both above 1.44%", rat(t, "0.02"), rat(t, "0.02"), true},
		{"long above, short recovered", rat(t, "0.02"), rat(t, "0.0005"), false},
		{"short above, long not yet", rat(t, "0.005"), rat(t, "0.02"), false},
		{"exactly at the threshold does not fire", rat(t, "0.0144"), rat(t, "0.0144"), false},
		{"no data", nil, rat(t, "0.02"), false},
	} {
		if got := page1h.Holds(tc.long, tc.short, target); got != tc.want {
			t.Errorf("%s: Holds = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[v1.SLOWindow]time.Duration{"5m": 5 * time.Minute, "1h": time.Hour, "28d": 28 * day, "30s": 30 * time.Second} {
		if got, err := budget.ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%s) = %s, %v", in, got, err)
		}
	}
	for _, bad := range []v1.SLOWindow{"", "5", "1w", "0h", "-1h", "h"} {
		if _, err := budget.ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) should fail", bad)
		}
	}
	for _, bad := range []string{"0", "100", "-1", "abc"} {
		if _, err := budget.ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) should fail", bad)
		}
	}
	if _, err := budget.Windows([]v1.BurnRateWindow{{Long: "5m", Short: "1h", Factor: "1"}}, nil); err == nil {
		t.Error("Windows should refuse a short window longer than its long one")
	}
}
