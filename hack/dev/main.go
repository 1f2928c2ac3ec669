// Command dev runs alertbridge on this machine with nothing installed but
// Go and the Debian packages hack/ensure-packages.sh installs: a local
// control plane (the kube-apiserver and etcd that hack/envtest-binaries.sh
// built), a throwaway PostgreSQL, a throwaway Prometheus scraping the
// sample SLOPolicy's service, the operator binary, and the sample
// resources. `make dev`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/slo"
	"github.com/alertbridge/alertbridge/test/integration/pgcluster"
	"github.com/alertbridge/alertbridge/test/integration/promtest"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

func main() {
	exitAfter := flag.Duration("exit-after", 0, "stop by itself after this long (0: run until Ctrl-C)")
	flag.Parse()
	if err := run(*exitAfter); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(exitAfter time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, exitAfter)
		defer cancel()
	}
	root := testenv.Root()
	work := filepath.Join(root, "tmp", "dev")
	if err := os.MkdirAll(work, 0o750); err != nil {
		return err
	}

	say("starting the control plane (kube-apiserver v%s + etcd) with alertbridge's CRDs", testenv.K8sVersion)
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	say("installed config/default: CRDs, RBAC, admission policies (the mirror finalizer's too), and the operator's ServiceAccount %s", env.Install.Username())
	defer func() { _ = env.Stop() }()
	admin, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	kcPath := filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return err
	}

	// The controller manager and the HTTP API run as their own
	// ServiceAccounts under the shipped ClusterRoles, never as an
	// administrator.
	opKcPath, err := writeKubeconfig(work, "operator.kubeconfig", env.Operator, env.Install.ServiceAccount)
	if err != nil {
		return err
	}
	apiKcPath, err := writeKubeconfig(work, "api.kubeconfig", env.API, env.Install.APIServiceAccount)
	if err != nil {
		return err
	}

	say("starting PostgreSQL (password authentication only; a role that may only read for the HTTP API)")
	pg, err := pgcluster.Start(ctx)
	if err != nil {
		return err
	}
	defer pg.Stop()
	readerDSN, err := pg.CreateRole(ctx, readerRole)
	if err != nil {
		return err
	}
	// The sample SLOPolicy's release gate reads a real Prometheus, which
	// scrapes requests of the sample's service made up here, so the first
	// gate a newcomer sees is evaluated rather than blocked for want of a
	// source.
	policy, err := readSampleSLOPolicy(root)
	if err != nil {
		return err
	}
	reqs := promtest.NewRequests(policy.Spec.Env)
	reqs.Set(policy.Spec.Service, devErrorsPerScrape)
	reqs.SetLatency(policy.Spec.Service, devLatency.Seconds())
	exporterAddr, stopExporter, err := reqs.Serve()
	if err != nil {
		return fmt.Errorf("failed to serve the sample service's metrics: %w", err)
	}
	defer stopExporter()
	prom, err := promtest.Start(ctx, exporterAddr)
	if err != nil {
		return fmt.Errorf("failed to start Prometheus: %w", err)
	}
	defer prom.Stop()
	say("started Prometheus on %s, scraping %s/%s's requests on %s every %s (%s of them 500s, each taking %s)",
		prom.URL(), policy.Spec.Service, policy.Spec.Env, exporterAddr, promtest.ScrapeInterval,
		percentOf(devErrorsPerScrape, promtest.RequestsPerScrape), devLatency)

	migrate := exec.CommandContext(ctx, filepath.Join(root, "bin", "alertbridge"), "migrate", "--dsn", pg.DSN(), "--grant-read-to", readerRole)
	migrate.Stdout, migrate.Stderr = os.Stdout, os.Stderr
	if err := migrate.Run(); err != nil {
		return fmt.Errorf("alertbridge migrate: %w", err)
	}

	// As shipped: the manager issues the HTTP API's certificate (for the
	// Service's names and the loopback address) and publishes its CA; the
	// HTTP API serves TLS with it, on the loopback interface only.
	say("starting the controller manager (bin/alertbridge run) and the HTTP API (bin/alertbridge serve, TLS on %s)", apiAddr)
	op, err := startProcess(filepath.Join(work, "operator.log"), []string{"ALERT_DATABASE_URL=" + pg.DSN(), "POD_NAMESPACE=" + env.Install.Namespace},
		filepath.Join(root, "bin", "alertbridge"), "run", "--kubeconfig", opKcPath,
		"--health-probe-bind-address", "127.0.0.1:18081", "--duplicate-gc-delay", "30s",
		"--api-tls-extra-names", "127.0.0.1,localhost", "--dashboard-url", "https://"+apiAddr)
	if err != nil {
		return err
	}
	defer op.stop()
	api, err := startProcess(filepath.Join(work, "api.log"), []string{"ALERT_DATABASE_URL=" + readerDSN, "POD_NAMESPACE=" + env.Install.Namespace},
		filepath.Join(root, "bin", "alertbridge"), "serve", "--kubeconfig", apiKcPath,
		"--api-bind-address", apiAddr, "--health-probe-bind-address", "127.0.0.1:18082")
	if err != nil {
		return err
	}
	defer api.stop()

	// config/default installed the mirror finalizer policy and waited for it
	// to apply, so every resource created from here on carries the finalizer;
	// the samples wait for the operator to be ready all the same.
	say("waiting for the controller manager and the HTTP API to be ready")
	if err := waitReady(ctx, "http://127.0.0.1:18081/readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("%w (see %s)", err, op.log)
	}
	if err := waitReady(ctx, "http://127.0.0.1:18082/readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("%w (see %s)", err, api.log)
	}

	assets, err := testenv.AssetsDir()
	if err != nil {
		return err
	}
	kubectl := func(args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kcPath}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	// The webhook Receiver comes first: a Receiver is told of the
	// Incidents opened after it exists, such as the sample's.
	sink, err := startWebhookSink(ctx, root, work)
	if err != nil {
		return err
	}
	defer sink.stop()
	say("creating a webhook Receiver in namespace prod that posts to the sink on %s (its output: %s)", webhookSinkAddr, sink.log)
	if err := kubectl("apply", "--server-side", "-f", filepath.Join(root, "config", "samples", "namespaces.yaml")); err != nil {
		return err
	}
	// The Receiver's Secret is read only because prod grants it, as a
	// namespace admin opts in; other namespaces keep their Secrets.
	if err := kubectl("create", "rolebinding", "alertbridge-credentials", "-n", "prod", "--clusterrole=alertbridge-credentials",
		"--serviceaccount="+env.Install.Namespace+":"+env.Install.ServiceAccount); err != nil {
		return err
	}
	receiver := filepath.Join(work, "receiver.yaml")
	if err := os.WriteFile(receiver, []byte(devReceiver), 0o600); err != nil {
		return err
	}
	if err := kubectl("apply", "--server-side", "-f", receiver); err != nil {
		return err
	}
	// The first evaluation comes when the SLOPolicy is created: wait until
	// Prometheus answers its queries, so it is made on data.
	if err := waitForData(ctx, prom.URL(), policy, 2*time.Minute); err != nil {
		return fmt.Errorf("%w\n%s", err, prom.Log())
	}
	samples, err := writeSamples(root, work, policy, prom.URL())
	if err != nil {
		return err
	}
	say("creating the sample resources (config/samples, the SLOPolicy %s/%s reading %s)", policy.Namespace, policy.Name, prom.URL())
	if err := kubectl("apply", "--server-side", "-k", samples); err != nil {
		return err
	}
	// Three firings of one alert: the operator folds them into one.
	for range 3 {
		if err := kubectl("create", "-f", filepath.Join(root, "config", "samples", "alert.yaml")); err != nil {
			return err
		}
	}
	// A Silence relative to now (YAML takes absolute times only), made with
	// the CLI as on-call would: the sample Alert is silenced, still counted.
	say("creating the sample Silence (config/samples/silence.yaml's, for 2h from now, with the CLI)")
	cli := exec.CommandContext(ctx, filepath.Join(root, "bin", "alertbridge"), "--kubeconfig", kcPath, "-n", "prod",
		"silences", "add", "service=gateway", `kind=~"latency|error_rate"`, "--duration", "2h",
		"--comment", "gateway 1.42 rollout (make dev's sample)", "--name", "gateway-rollout")
	cli.Stdout, cli.Stderr = os.Stdout, os.Stderr
	if err := cli.Run(); err != nil {
		return fmt.Errorf("failed to create the sample Silence: %w", err)
	}
	// A ServiceAccount for the dashboard page, with the on-call role in
	// every namespace: its token (printed below) is what an on-call engineer
	// pastes into the page.
	say("creating the ServiceAccount default/%s (alertbridge-oncall) for the dashboard's token", dashboardSA)
	if err := kubectl("create", "serviceaccount", dashboardSA, "-n", "default"); err != nil {
		return err
	}
	if err := kubectl("create", "clusterrolebinding", "alertbridge-dev-"+dashboardSA, "--clusterrole=alertbridge-oncall",
		"--serviceaccount=default:"+dashboardSA); err != nil {
		return err
	}
	evaluated, err := waitForGate(ctx, env.Admin, policy, 2*time.Minute)
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil:
		say("the release gate %s/%s was not evaluated: %v", policy.Namespace, policy.Name, err)
	default:
		say("the release gate %s/%s decided %s (%s: %s)%s", policy.Namespace, policy.Name,
			evaluated.Gate.Decision, evaluated.Gate.Reason, evaluated.Gate.Message, observed(evaluated.Observed))
	}
	if err := kubectl("get", "alertbridge", "-A"); err != nil && ctx.Err() == nil {
		return err
	}
	caPath := filepath.Join(work, "ca.crt")
	if err := writeCA(ctx, env.Admin, env.Install.Namespace, caPath); err != nil {
		return err
	}

	fmt.Printf(`
alertbridge is running.
  kubeconfig:    export KUBECONFIG=%s
  kubectl:       %s/kubectl
  CLI:           bin/alertbridge --kubeconfig %s …
  PostgreSQL:    %s
  Prometheus:    %s (scraping %s/%s's requests from %s); the SLOPolicy %s/%s reads it:
                 %s/kubectl --kubeconfig %s get slopolicy -n %s
  logs:          %s (controllers), %s (HTTP API)
  HTTP API:      https://%s (TLS; trust %s, the CA the ConfigMap alertbridge-api-ca publishes;
                 tokens need --audience alertbridge)
                 curl --cacert %s -H "Authorization: Bearer $TOKEN" https://%s/v1/alerts?namespace=prod
  Silence:       prod/gateway-rollout silences the sample Alert for 2h;
                 bin/alertbridge --kubeconfig %s -n prod silences expire gateway-rollout puts it back in play
  dashboard:     https://%s/  (the browser asks you to trust the local CA; paste this token into the page:)
  token:         %s/kubectl --kubeconfig %s create token %s -n default --audience alertbridge --duration 8h
  notifications: Receiver prod/dev-webhook → bin/alertbridge webhook-sink on %s; what it received: tail -f %s
Press Ctrl-C to stop; everything started here is removed.
`, kcPath, assets, kcPath, pg.DSN(), prom.URL(), policy.Spec.Service, policy.Spec.Env, exporterAddr, policy.Namespace, policy.Name,
		assets, kcPath, policy.Namespace, op.log, api.log, apiAddr, caPath, caPath, apiAddr, kcPath, apiAddr, assets, kcPath, dashboardSA, webhookSinkAddr, sink.log)

	select {
	case <-ctx.Done():
		say("stopping")
		return nil
	case err := <-op.exited:
		return fmt.Errorf("the controller manager stopped (see %s): %w", op.log, exitErr(err))
	case err := <-api.exited:
		return fmt.Errorf("the HTTP API stopped (see %s): %w", api.log, exitErr(err))
	}
}

// apiAddr is where make dev's HTTP API listens: the loopback interface
// only, never every interface.
const apiAddr = "127.0.0.1:8090"

// readerRole is the PostgreSQL role the HTTP API reads history as.
const readerRole = "alertbridge_reader"

func writeKubeconfig(dir, name string, cfg *rest.Config, user string) (string, error) {
	kc, err := testenv.Kubeconfig(cfg, user)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, kc, 0o600)
}

// process is one of make dev's alertbridge processes.
type process struct {
	cmd    *exec.Cmd
	log    string
	exited chan error
}

func startProcess(logPath string, env []string, name string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &process{cmd: exec.Command(name, args...), log: logPath, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	go func() {
		p.exited <- p.cmd.Wait()
		_ = logFile.Close()
	}()
	return p, nil
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			say("%s exited: %v", filepath.Base(p.log), err)
		}
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

func exitErr(err error) error {
	if err == nil {
		return errors.New("exited")
	}
	return err
}

// writeCA saves the CA certificate the ConfigMap alertbridge-api-ca
// publishes, for curl and the browser.
func writeCA(ctx context.Context, cfg *rest.Config, ns, path string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "alertbridge-api-ca", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to read the HTTP API's CA: %w", err)
	}
	return os.WriteFile(path, []byte(cm.Data["ca.crt"]), 0o600)
}

// dashboardSA is the ServiceAccount whose token make dev prints for the
// dashboard page.
const dashboardSA = "dashboard"

// webhookSinkAddr is where `alertbridge webhook-sink` listens.
const webhookSinkAddr = "127.0.0.1:18095"

// devSigningKey is the dev Receiver's signing key, in its Secret and given
// to the sink (a local throwaway, never a real credential).
const devSigningKey = "dev-signing-key"

// devReceiver is a webhook Receiver, and its Secret, that tells the sink
// about every Incident event in namespace prod.
const devReceiver = `apiVersion: v1
kind: Secret
metadata:
  name: dev-webhook
  namespace: prod
stringData:
  signingKey: ` + devSigningKey + `
---
apiVersion: ops.alertbridge.io/v1alpha1
kind: Receiver
metadata:
  name: dev-webhook
  namespace: prod
spec:
  type: webhook
  url: http://` + webhookSinkAddr + `/alertbridge
  secretRef:
    name: dev-webhook
`

type webhookSink struct {
	cmd *exec.Cmd
	log string
}

// startWebhookSink runs `alertbridge webhook-sink` with the dev Receiver's
// signing key; it prints each notification it receives to its log.
func startWebhookSink(ctx context.Context, root, work string) (*webhookSink, error) {
	s := &webhookSink{log: filepath.Join(work, "webhook-sink.log")}
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(filepath.Join(root, "bin", "alertbridge"), "webhook-sink", "--listen", webhookSinkAddr)
	s.cmd.Env = append(os.Environ(), "ALERTBRIDGE_WEBHOOK_SIGNING_KEY="+devSigningKey)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	_ = logFile.Close()
	say("starting the webhook sink (bin/alertbridge webhook-sink --listen %s)", webhookSinkAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", webhookSinkAddr, time.Second)
		if err == nil {
			_ = c.Close()
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("the webhook sink did not listen on %s (see %s)", webhookSinkAddr, s.log)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *webhookSink) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the operator did not become ready within %s", limit)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func say(format string, args ...any) {
	fmt.Printf(">> "+format+"\n", args...)
}

// What the sample SLOPolicy's service is made to serve: a fifth of a
// percent of its requests fail and each takes 80 ms, inside the sample's
// objectives (1% and a p95 of 300 ms), so its gate allows.
const (
	devErrorsPerScrape = 20 // of promtest.RequestsPerScrape
	devLatency         = 80 * time.Millisecond
)

// observed is what the gate saw, as ", observed: …", or "".
func observed(o *v1.ObservedSLIs) string {
	if o == nil || (o.LatencyP95Ms == "" && o.ErrorRatePercent == "") {
		return ""
	}
	var s string
	if o.LatencyP95Ms != "" {
		s += ", a p95 of " + o.LatencyP95Ms + " ms"
	}
	if o.ErrorRatePercent != "" {
		s += ", " + o.ErrorRatePercent + "% errors"
	}
	return "; observed" + s[1:]
}

func percentOf(n, of int) string {
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', -1, 64) + "%"
}

// sampleSLOPolicy is the sample SLOPolicy, relative to the module root.
var sampleSLOPolicy = filepath.Join("config", "samples", "slopolicy.yaml")

// readSampleSLOPolicy reads the sample SLOPolicy: its service and env are
// what make dev's Prometheus is fed, its queries what it is asked.
func readSampleSLOPolicy(root string) (*v1.SLOPolicy, error) {
	data, err := os.ReadFile(filepath.Join(root, sampleSLOPolicy)) // #nosec G304 -- the module's own sample.
	if err != nil {
		return nil, err
	}
	var p v1.SLOPolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", sampleSLOPolicy, err)
	}
	if p.Kind != "SLOPolicy" || p.Name == "" || p.Namespace == "" || p.Spec.Service == "" || p.Spec.Env == "" {
		return nil, fmt.Errorf("%s is not one SLOPolicy with a name, namespace, service and env", sampleSLOPolicy)
	}
	return &p, nil
}

// writeSamples writes a kustomization of config/samples whose SLOPolicy
// reads promURL, and returns its directory: the sample itself keeps the
// URL a cluster's Prometheus would have.
func writeSamples(root, work string, p *v1.SLOPolicy, promURL string) (string, error) {
	dir := filepath.Join(work, "samples")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	base, err := filepath.Rel(dir, filepath.Join(root, "config", "samples"))
	if err != nil {
		return "", err
	}
	k := fmt.Sprintf(`# make dev's samples: config/samples, the SLOPolicy reading make dev's Prometheus.
resources:
  - %s
patches:
  - target:
      group: %s
      kind: SLOPolicy
      name: %s
      namespace: %s
    patch: |-
      - op: replace
        path: /spec/source/prometheus/url
        value: %s
`, filepath.ToSlash(base), v1.GroupVersion.Group, p.Name, p.Namespace, promURL)
	return dir, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600)
}

// waitForData polls Prometheus at promURL with p's queries until each
// returns a value.
func waitForData(ctx context.Context, promURL string, p *v1.SLOPolicy, limit time.Duration) error {
	src, err := slo.NewClient(promURL, slo.Auth{}, 10*time.Second)
	if err != nil {
		return err
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		obs := slo.Observe(ctx, src, p, time.Now())
		if obs.SourceErr == nil && obs.SpecErr == nil &&
			(p.Spec.Objectives.LatencyP95Ms == nil || !obs.Latency.NoData()) &&
			(p.Spec.Objectives.ErrorRatePercent == nil || !obs.ErrorRate.NoData()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("prometheus at %s had no data for %s/%s's queries within %s", promURL, p.Spec.Service, p.Spec.Env, limit)
		case <-time.After(promtest.ScrapeInterval):
		}
	}
}

// waitForGate waits for the operator's first evaluation of the SLOPolicy
// as applied, and returns its status, the gate set.
func waitForGate(ctx context.Context, cfg *rest.Config, p *v1.SLOPolicy, limit time.Duration) (*v1.SLOPolicyStatus, error) {
	c, err := client.New(cfg, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		var got v1.SLOPolicy
		err := c.Get(ctx, client.ObjectKeyFromObject(p), &got)
		if err == nil && got.Status.Gate != nil && got.Status.LastEvaluatedAt != nil &&
			got.Status.ObservedGeneration == got.Generation {
			return &got.Status, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no evaluation within %s", limit)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
