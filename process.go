package main

import (
	goflag "flag"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/kube"
)

// processFlags are what `alertbridge run` and `alertbridge serve` share:
// their Kubernetes client's limits and their logging.
type processFlags struct {
	kubeQPS   float32
	kubeBurst int
	pprofAddr string
	zap       zap.Options
}

func (p *processFlags) bind(f *pflag.FlagSet) {
	f.Float32Var(&p.kubeQPS, "kube-api-qps", kube.OperatorQPS, "client-side limit of requests per second to the Kubernetes API; negative (the default) leaves limiting to the API server's Priority and Fairness (config/flowcontrol)")
	f.IntVar(&p.kubeBurst, "kube-api-burst", kube.OperatorBurst, "client-side burst of requests to the Kubernetes API, with a positive --kube-api-qps")
	f.StringVar(&p.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints, for profiling (plain HTTP, no authentication: bind it to localhost and reach it with kubectl port-forward); 0 turns it off")
	goFlags := goflag.NewFlagSet("zap", goflag.ContinueOnError)
	p.zap.BindFlags(goFlags)
	f.AddGoFlagSet(goFlags)
}

// setLogger makes the flags' logger controller-runtime's.
func (p *processFlags) setLogger() { ctrl.SetLogger(zap.New(zap.UseFlagOptions(&p.zap))) }

// restConfig is the process's Kubernetes client configuration, with the
// flags' limits, logged once.
func (p *processFlags) restConfig(app *cli.App) (*rest.Config, error) {
	cfg, err := app.Kube.ToRESTConfig()
	if err != nil {
		return nil, cli.Exit(cli.ExitUsage, fmt.Errorf("failed to load kubeconfig: %w", err))
	}
	cfg.QPS, cfg.Burst = p.kubeQPS, p.kubeBurst
	ctrl.Log.WithName("setup").Info("Kubernetes API client", "host", cfg.Host, "qps", cfg.QPS, "burst", cfg.Burst)
	return cfg, nil
}
