package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// statusPolicyBinding binds the admission policy that judges claims and
// acks (config/admission/alert_status_policy.yaml).
const statusPolicyBinding = "alertbridge-alert-status"

// pathAlerts is how many Alerts the claim and ack paths are counted over.
const pathAlerts = 100

// ackStarts are the times acks were sent, by Alert, for the mirror lag.
type ackStarts struct {
	mu sync.Mutex
	at map[types.UID]time.Time
}

func (a *ackStarts) record(uid types.UID, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[types.UID]time.Time{}
	}
	a.at[uid] = t
}

// agents are n Go claimers in ns, each a ServiceAccount of its own bound
// to alertbridge-agent that knows its user name (as a long-running agent
// does after its first call).
func (r *run) agents(ns string, n int) []*claim.Claimer {
	out := make([]*claim.Claimer, n)
	for i := range out {
		u := r.user(ns, fmt.Sprintf("agent-%d", i), "alertbridge-agent")
		c, err := u.Client()
		r.check(err)
		out[i] = &claim.Claimer{Client: c, User: u.Username}
	}
	return out
}

// claimAckPaths counts what one claim and one ack cost, one agent taking
// batches of 25 and then acking each Alert it holds.
func (r *run) claimAckPaths() {
	ns := r.namespace("paths-")
	r.createNew(ns, pathAlerts)
	cl := r.agents(ns, 1)[0]
	r.quiesce()
	before := r.requests()
	var held []v1.Alert
	for {
		got, err := cl.Claim(r.ctx, claim.Request{Namespace: ns, Limit: r.size.Batch, Owner: "agent-0"})
		if errors.Is(err, claim.ErrNothingToClaim) {
			break
		}
		r.check(err)
		held = append(held, got...)
	}
	if len(held) != pathAlerts {
		r.fatal(fmt.Errorf("one agent claimed %d of %d Alerts", len(held), pathAlerts))
	}
	r.quiesce()
	mid := r.requests()
	for i := range held {
		_, err := cl.Ack(r.ctx, client.ObjectKeyFromObject(&held[i]), "agent-0", "handled")
		r.check(err)
	}
	r.quiesce()
	after := r.requests()
	c, _ := perUnit(mid.Sub(before), pathAlerts)
	a, _ := perUnit(after.Sub(mid), pathAlerts)
	r.rep.path(fmt.Sprintf("a claim (per Alert, one Go agent, batches of %d, the last empty claim included)", r.size.Batch), c)
	r.rep.path("an ack (per Alert, one Go agent)", a)
}

// claimAckGo drains Alerts with 8 Go agents five times, alternating the
// alert status admission policy in effect and its binding removed (on,
// off, on, off, on), so the policy's cost is measured in one run and a
// drift of the shared machine's load falls on both sides.
func (r *run) claimAckGo() {
	probe := r.policyProbe()
	binding := r.policyBinding()
	var on, off []drained
	for i := range 5 {
		policyOn := i%2 == 0
		if i > 0 {
			if policyOn {
				r.check(testenv.Apply(r.ctx, r.admin, binding))
			} else {
				r.check(r.admin.Delete(r.ctx, binding.DeepCopy()))
			}
			r.waitPolicy(probe, policyOn)
		}
		if i == 0 {
			r.profile(2*time.Second, "claim5a")
		}
		d := r.drainGo()
		if policyOn {
			on = append(on, d)
		} else {
			off = append(off, d)
		}
	}
	rates := func(ds []drained) (mean float64, each []string, lo, hi float64) {
		lo = ds[0].rate
		for _, d := range ds {
			mean += d.rate / float64(len(ds))
			each = append(each, fmt.Sprintf("%.0f", d.rate))
			lo, hi = min(lo, d.rate), max(hi, d.rate)
		}
		return mean, each, lo, hi
	}
	onRate, onEach, onLo, onHi := rates(on)
	offRate, offEach, _, _ := rates(off)
	r.rep.addVs("5a", fmt.Sprintf("claim+ack, %d agents, Go client (internal/claim), batches of %d, policy %s in effect", r.size.Claimers, r.size.Batch, statusPolicyBinding),
		fmt.Sprintf("%.0f Alerts/s (mean of %s)", onRate, strings.Join(onEach, ", ")),
		comparison{value: onRate, base: "1b", label: "of 1b", min: 0.8, metric: "claimack/ceiling2"})
	cost := 1 - onRate/offRate
	compared := fmt.Sprintf("the policy costs %.0f%% (5a/5b = %.2f)", math.Round(100*cost)+0, onRate/offRate)
	if spread := (onHi - onLo) / onRate; spread > math.Abs(cost) {
		compared += fmt.Sprintf("; the drains of 5a alone differ by %.0f%%, so the difference is within the noise", 100*spread)
	}
	r.rep.add("5b", "claim+ack, Go client, the policy's binding removed (alternating with 5a)",
		fmt.Sprintf("%.0f Alerts/s (mean of %s)", offRate, strings.Join(offEach, ", ")), compared, goal("≤ 10%", cost <= 0.10))
	r.rep.path(fmt.Sprintf("claim+ack with %d racing Go agents (per Alert, conflicts included, policy on)", r.size.Claimers), on[0].cost)
	lagRow(r, "5d", fmt.Sprintf("mirror lag while 5a acks at %.0f/s: from sending the ack to its row in PostgreSQL", on[0].rate), on[0].lags)
	r.b.ReportMetric(onRate/offRate, "policy-on/off")
}

type drained struct {
	rate float64
	cost string
	lags []time.Duration
}

// drainGo creates Alerts, lets the operator make them New (untimed), then
// times 8 agents claiming and acking them all.
func (r *run) drainGo() drained {
	ns := r.namespace("claims-")
	n := r.size.Claims
	r.createNew(ns, n)
	agents := r.agents(ns, r.size.Claimers)
	var starts ackStarts
	elapsed, cost := r.drainLoops(n, len(agents), "the agents", func(i int) (int, error) {
		owner := fmt.Sprintf("agent-%d", i)
		got, err := agents[i].Claim(r.ctx, claim.Request{Namespace: ns, Limit: r.size.Batch, Owner: owner})
		if errors.Is(err, claim.ErrNothingToClaim) {
			return 0, errDrained
		}
		if err != nil {
			return 0, err
		}
		for j := range got {
			starts.record(got[j].UID, time.Now())
			if _, err := agents[i].Ack(r.ctx, client.ObjectKeyFromObject(&got[j]), owner, "handled"); err != nil {
				return 0, err
			}
		}
		return len(got), nil
	})
	return drained{rate: float64(n) / elapsed.Seconds(), cost: cost, lags: r.mirrorLags(&starts)}
}

// claimAckCLI drains Alerts with 8 loops of the built binary, as a shell
// agent would: `alertbridge alerts claim … -o json`, then `alerts ack` for
// each Alert it got, each loop a ServiceAccount bound to alertbridge-agent
// with its token in a kubeconfig.
func (r *run) claimAckCLI() {
	r.claimAckCLIWith("5c", false)
	r.claimAckCLIWith("5f", true)
}

// claimAckCLIWith drains n Alerts with 8 loops of the CLI: a claim, then
// an ack process per Alert, or (batch) one ack of the whole claim.
func (r *run) claimAckCLIWith(id string, batch bool) {
	ns := r.namespace("cli-")
	n := r.size.CLIClaims
	r.createNew(ns, n)
	kubeconfigs := make([]string, r.size.Claimers)
	for i := range kubeconfigs {
		kubeconfigs[i] = r.user(ns, fmt.Sprintf("agent-%d", i), "alertbridge-agent").Kubeconfig
	}
	bin := filepath.Join(testenv.Root(), "bin", "alertbridge")
	// The CLI's own CPU (user + system of every process) is part of what
	// bounds this row: each ack is a process of its own.
	var cpu atomic.Int64
	var procs atomic.Int64
	alertbridge := func(args ...string) ([]byte, int, error) {
		cmd := exec.CommandContext(r.ctx, bin, args...) // #nosec G204 -- our own binary
		out, err := cmd.Output()
		if ps := cmd.ProcessState; ps != nil {
			cpu.Add(int64(ps.UserTime() + ps.SystemTime()))
			procs.Add(1)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, ee.ExitCode(), fmt.Errorf("alertbridge %v: %w: %s", args, err, ee.Stderr)
		}
		return out, 0, err
	}
	r.profile(2*time.Second, "claim"+id)
	elapsed, cost := r.drainLoops(n, len(kubeconfigs), "the CLI loops", func(i int) (int, error) {
		kc, owner := kubeconfigs[i], fmt.Sprintf("agent-%d", i)
		out, code, err := alertbridge("alerts", "claim", "--kubeconfig", kc, "-n", ns, "--owner", owner,
			"--limit", fmt.Sprint(r.size.Batch), "-o", "json")
		if code == cli.ExitNothing {
			return 0, errDrained
		}
		if err != nil {
			return 0, err
		}
		var list struct{ Items []v1.Alert }
		if err := json.Unmarshal(out, &list); err != nil {
			return 0, fmt.Errorf("alerts claim -o json printed %q: %w", out, err)
		}
		ack := []string{"alerts", "ack", "--kubeconfig", kc, "-n", ns, "--owner", owner, "--note", "handled"}
		for j, a := range list.Items {
			if !batch {
				if _, _, err := alertbridge(append(ack, a.Name)...); err != nil {
					return 0, err
				}
			} else if ack = append(ack, a.Name); j == len(list.Items)-1 {
				if _, _, err := alertbridge(ack...); err != nil {
					return 0, err
				}
			}
		}
		return len(list.Items), nil
	})
	rate := float64(n) / elapsed.Seconds()
	how, per, metric := "`alerts ack NAME` per Alert", "one ack process", "cli/ceiling2"
	if batch {
		how, per, metric = "one `alerts ack NAME...` of the batch", "its share of one ack process", "cli-batch/ceiling2"
	}
	r.rep.addVs(id, fmt.Sprintf("claim+ack, %d loops of the CLI: `alertbridge alerts claim --limit %d -o json`, then %s", r.size.Claimers, r.size.Batch, how),
		fmt.Sprintf("%.1f Alerts/s; the CLI's %d processes used %.0f ms of CPU each, %.2f cores over the drain",
			rate, procs.Load(), float64(cpu.Load())/float64(max(procs.Load(), 1))/1e6, float64(cpu.Load())/float64(elapsed)), comparison{value: rate, base: "1b", label: "of 1b", min: 0.5, metric: metric})
	r.rep.path(fmt.Sprintf("claim+ack through the CLI, %d loops, %s (per Alert: its share of a claim process plus %s)", r.size.Claimers, how, per), cost)
}

// policyProbe is an agent and a New Alert in a namespace of their own, to
// see whether the alert status policy is in effect.
type probe struct {
	agent client.Client
	alert *v1.Alert
}

func (r *run) policyProbe() probe {
	ns := r.namespace("probe-")
	r.createNew(ns, 1)
	a := r.alerts(ns)[0]
	return probe{agent: r.agents(ns, 1)[0].Client, alert: &a}
}

// waitPolicy waits until the policy is (or is not) in effect: an agent's
// dry-run write of occurrences is refused exactly while it is.
func (r *run) waitPolicy(p probe, on bool) {
	var last error
	err := wait.PollUntilContextTimeout(r.ctx, 50*time.Millisecond, settleLimit, true, func(ctx context.Context) (bool, error) {
		a := p.alert.DeepCopy()
		orig := a.DeepCopy()
		a.Status.Occurrences = 7
		last = p.agent.Status().Patch(ctx, a, client.MergeFrom(orig), client.DryRunAll)
		return (last != nil) == on, nil
	})
	if err != nil {
		r.fatal(fmt.Errorf("the alert status policy did not become on=%t: %v", on, last))
	}
}

// policyBinding is the binding as config/default ships it.
func (r *run) policyBinding() *unstructured.Unstructured {
	objs, err := testenv.Build(filepath.Join(testenv.Root(), testenv.DefaultInstall))
	r.check(err)
	i := slices.IndexFunc(objs, func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "ValidatingAdmissionPolicyBinding" && u.GetName() == statusPolicyBinding
	})
	if i < 0 {
		r.fatal(fmt.Errorf("config/default installs no binding %s", statusPolicyBinding))
	}
	return objs[i]
}

// errDrained ends a claimer's loop: nothing is left to claim.
var errDrained = errors.New("nothing left to claim")

// drainLoops times loops claimers, each calling claimAck(i) (one claim and
// the acks of what it got; it answers how many) until it answers
// errDrained, and returns the time they took and the API requests per
// Alert; it fails the run unless together they took n Alerts.
func (r *run) drainLoops(n, loops int, who string, claimAck func(i int) (int, error)) (time.Duration, string) {
	var taken atomic.Int64
	r.quiesce()
	before := r.requests()
	start := time.Now()
	errs := make(chan error, loops)
	var wg sync.WaitGroup
	for i := range loops {
		wg.Go(func() {
			for {
				k, err := claimAck(i)
				if errors.Is(err, errDrained) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				taken.Add(int64(k))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		r.fatal(err)
	}
	if got := taken.Load(); got != int64(n) {
		r.fatal(fmt.Errorf("%s claimed %d of %d Alerts", who, got, n))
	}
	r.quiesce()
	cost, _ := perUnit(r.requests().Sub(before), float64(n))
	return elapsed, cost
}
