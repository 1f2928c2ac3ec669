package kube

import "k8s.io/client-go/rest"

// Client-side rate limits. client-go's defaults (5 requests/s, burst 10)
// throttle an operator that writes one status per Alert to a crawl, so the
// operator and the CLI set their own; `alertbridge run` takes
// --kube-api-qps/--kube-api-burst, and tests use these same values, so no
// test measures a faster client than users run.
const (
	// OperatorQPS and OperatorBurst are `alertbridge run`'s defaults.
	OperatorQPS   float32 = 100
	OperatorBurst int     = 200
	// CLIQPS and CLIBurst are the command line's: one claim of 25 Alerts
	// is about 30 requests, which the burst takes at once.
	CLIQPS   float32 = 50
	CLIBurst int     = 100
)

// WithOperatorLimits sets the operator's default client limits on cfg.
func WithOperatorLimits(cfg *rest.Config) *rest.Config {
	cfg.QPS, cfg.Burst = OperatorQPS, OperatorBurst
	return cfg
}

// WithCLILimits sets the command line's client limits on cfg.
func WithCLILimits(cfg *rest.Config) *rest.Config {
	cfg.QPS, cfg.Burst = CLIQPS, CLIBurst
	return cfg
}
