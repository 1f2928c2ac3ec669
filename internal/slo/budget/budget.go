// Package budget is the arithmetic of error budgets and burn rates as the
// Google SRE workbook defines it ("Alerting on SLOs"), in exact decimals.
// An objective of target percent over a window allows a share 1-target/100
// of events to be bad: that share is the error budget. The burn rate is how
// fast it is spent: the observed error ratio divided by the budget, so a
// burn rate of 1 spends exactly the budget over the window.
package budget

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

var (
	one     = big.NewRat(1, 1)
	hundred = big.NewRat(100, 1)
)

// ParseTarget reads a target percentage ("99.9"), strictly between 0 and 100.
func ParseTarget(s string) (*big.Rat, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok || r.Sign() <= 0 || r.Cmp(hundred) >= 0 {
		return nil, fmt.Errorf("target %q is not a percentage strictly between 0 and 100", s)
	}
	return r, nil
}

// ParseWindow reads a one-unit Prometheus duration (5m, 1h, 28d).
func ParseWindow(w v1.SLOWindow) (time.Duration, error) {
	s := string(w)
	if len(s) < 2 {
		return 0, fmt.Errorf("window %q is not a duration such as 5m, 1h or 28d", s)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n <= 0 || n > 999999 {
		return 0, fmt.Errorf("window %q is not a duration such as 5m, 1h or 28d", s)
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("window %q is not a duration such as 5m, 1h or 28d", s)
	}
	return time.Duration(n) * unit, nil
}

// Budget is the share of events the objective allows to be bad, 0..1:
// 1 - target/100. A target of 99.9 allows 0.001.
func Budget(targetPercent *big.Rat) *big.Rat {
	return new(big.Rat).Sub(one, new(big.Rat).Quo(targetPercent, hundred))
}

// Minutes is the budget as minutes of total outage over window: 99.9%
// over 30 days is 43.2 minutes.
func Minutes(targetPercent *big.Rat, window time.Duration) *big.Rat {
	return new(big.Rat).Mul(Budget(targetPercent), minutesOf(window))
}

// BurnRate is errorRatio (0..1) divided by the budget: 1 spends the budget
// exactly over the window, 14.4 spends 2% of a 30-day budget in an hour.
func BurnRate(errorRatio, targetPercent *big.Rat) *big.Rat {
	return new(big.Rat).Quo(errorRatio, Budget(targetPercent))
}

// Consumed is the share of the budget (0..1) a burn rate spends over
// alertWindow when the budget is counted over sloWindow.
func Consumed(burnRate *big.Rat, alertWindow, sloWindow time.Duration) *big.Rat {
	return new(big.Rat).Mul(burnRate, new(big.Rat).Quo(minutesOf(alertWindow), minutesOf(sloWindow)))
}

// FactorFor is the burn rate that spends consumed (0..1) of the budget in
// alertWindow: the workbook's 14.4 is FactorFor(2%, 1h, 30d).
func FactorFor(consumed *big.Rat, alertWindow, sloWindow time.Duration) *big.Rat {
	return new(big.Rat).Mul(consumed, new(big.Rat).Quo(minutesOf(sloWindow), minutesOf(alertWindow)))
}

// Exhaustion is how long a constant burn rate takes to spend a whole
// budget counted over sloWindow; an error for a burn rate that is not
// positive (the budget is never spent).
func Exhaustion(burnRate *big.Rat, sloWindow time.Duration) (time.Duration, error) {
	if burnRate.Sign() <= 0 {
		return 0, errors.New("a burn rate of 0 never spends the budget")
	}
	m, _ := new(big.Rat).Quo(minutesOf(sloWindow), burnRate).Float64()
	return time.Duration(m * float64(time.Minute)), nil
}

// Remaining is the share of the budget left (1 is untouched, 0 spent,
// negative overspent) when errorRatio of the events over the whole window
// were bad.
func Remaining(errorRatio, targetPercent *big.Rat) *big.Rat {
	return new(big.Rat).Sub(one, BurnRate(errorRatio, targetPercent))
}

// Threshold is the error ratio above which a burn rate of factor is
// exceeded: factor × budget.
func Threshold(factor, targetPercent *big.Rat) *big.Rat {
	return new(big.Rat).Mul(factor, Budget(targetPercent))
}

// Window is one multiwindow check of a condition.
type Window struct {
	Long, Short time.Duration
	Factor      *big.Rat
	// LongName and ShortName are the windows as written (1h, 5m), the
	// names of recording rules and status entries.
	LongName, ShortName v1.SLOWindow
}

// Holds reports whether the check fires: the error ratio over both the
// long and the short window exceeds factor × budget. A window without
// data (nil) never fires: a quiet service burns nothing.
func (w Window) Holds(long, short, targetPercent *big.Rat) bool {
	if long == nil || short == nil {
		return false
	}
	t := Threshold(w.Factor, targetPercent)
	return long.Cmp(t) > 0 && short.Cmp(t) > 0
}

// The SRE workbook's multiwindow, multi-burn-rate alerts (table 5-8):
// page at 2% of a 30-day budget in 1h or 5% in 6h, ticket at 10% in 1d or
// 3d; each long window is checked with a short one of 1/12 its length.
var (
	DefaultPage = []v1.BurnRateWindow{
		{Long: "1h", Short: "5m", Factor: "14.4"},
		{Long: "6h", Short: "30m", Factor: "6"},
	}
	DefaultTicket = []v1.BurnRateWindow{
		{Long: "1d", Short: "2h", Factor: "3"},
		{Long: "3d", Short: "6h", Factor: "1"},
	}
)

// Windows parses the windows of a condition; nil or empty gives def.
func Windows(spec []v1.BurnRateWindow, def []v1.BurnRateWindow) ([]Window, error) {
	if len(spec) == 0 {
		spec = def
	}
	out := make([]Window, 0, len(spec))
	for i, s := range spec {
		long, err := ParseWindow(s.Long)
		if err != nil {
			return nil, fmt.Errorf("windows[%d].long: %w", i, err)
		}
		short, err := ParseWindow(s.Short)
		if err != nil {
			return nil, fmt.Errorf("windows[%d].short: %w", i, err)
		}
		f, ok := new(big.Rat).SetString(s.Factor)
		if !ok || f.Sign() <= 0 {
			return nil, fmt.Errorf("windows[%d].factor %q is not a positive decimal", i, s.Factor)
		}
		if short >= long {
			return nil, fmt.Errorf("windows[%d]: short %s must be shorter than long %s", i, s.Short, s.Long)
		}
		out = append(out, Window{Long: long, Short: short, Factor: f, LongName: s.Long, ShortName: s.Short})
	}
	return out, nil
}

func minutesOf(d time.Duration) *big.Rat {
	return new(big.Rat).SetFrac64(int64(d/time.Second), 60)
}
