package main

import (
	goflag "flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/go-logr/logr"
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

// setup makes the flags' logger controller-runtime's and gives the Go
// runtime the container's memory limit.
func (p *processFlags) setup() {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&p.zap)))
	setMemoryLimit(ctrl.Log.WithName("setup"), os.Getenv)
}

// memoryLimitShare is the share of the container's memory limit the Go
// runtime keeps its heap and stacks under; the rest is for what it does
// not count (thread stacks of the OS, page-cache pressure, fragmentation).
const memoryLimitShare = 0.9

// setMemoryLimit sets the runtime's soft memory limit to memoryLimitShare
// of MEMORY_LIMIT, the container's limits.memory in bytes as the
// Deployment passes it through the downward API: close to the limit the
// garbage collector runs more often instead of the kernel killing the
// process. GOMEMLIMIT, when set, wins, as the Go runtime documents.
func setMemoryLimit(log logr.Logger, getenv func(string) string) {
	if getenv("GOMEMLIMIT") != "" {
		log.Info("memory limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
		return
	}
	raw := getenv("MEMORY_LIMIT")
	if raw == "" {
		return
	}
	limit, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || limit <= 0 {
		log.Info("ignoring MEMORY_LIMIT: not a positive number of bytes", "value", raw)
		return
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	log.Info("memory limit from the container's", "containerBytes", limit, "goBytes", soft)
}

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
