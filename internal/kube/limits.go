package kube

import "k8s.io/client-go/rest"

// Client-side rate limits. client-go's defaults (5 requests/s, burst 10)
// throttle an operator that writes one status per Alert to a crawl: the
// shipped binary was 36 times slower than the same code unthrottled. The
// operator therefore turns client-side limiting off by default and relies on
// the API server's Priority and Fairness, under the FlowSchema and priority
// level config/flowcontrol ships, which queues its requests at the server
// instead of letting a storm starve other controllers
// (docs/performance.md). `alertbridge run` takes --kube-api-qps/--kube-api-burst
// for clusters that want a client-side limit too. The CLI keeps a modest
// limit: one claim of 25 Alerts is about 30 requests, which its burst takes
// at once. Tests use these same values, so no test measures a faster client
// than users run.
const (
	// OperatorQPS and OperatorBurst are `alertbridge run`'s defaults; a
	// negative QPS turns client-side limiting off.
	OperatorQPS   float32 = -1
	OperatorBurst int     = 0
	// CLIQPS and CLIBurst are the command line's.
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
