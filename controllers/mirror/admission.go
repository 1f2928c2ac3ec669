package mirror

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/metrics"
)

// FinalizerPolicyName is the MutatingAdmissionPolicy (and binding) of
// config/components/mirror-finalizer.
const FinalizerPolicyName = "alertbridge-mirror-finalizer"

// DefaultPolicyCheckInterval is how often the operator checks that the
// mirror finalizer policy is in effect.
const DefaultPolicyCheckInterval = 10 * time.Second

// policyState is the outcome of the last check of the finalizer policy.
type policyState struct {
	// checked is false until the first check is done.
	checked bool
	// active: the dry-run Alert came back with the finalizer.
	active bool
	// detail says what the check saw, in words stable from check to check
	// (it ends up in a condition message).
	detail string
}

// finalizerPolicyCheck checks, at start and every Interval, that the
// mirror finalizer's MutatingAdmissionPolicy is in effect: it dry-runs the
// creation of an Alert in the operator's own namespace and looks for the
// finalizer on the answer. It installs and deletes nothing (the policy
// ships with config/default) and never stops the operator: it reports
// alertbridge_mirror_finalizer_policy_active, a log line on each change,
// and, through the mirror status controller, the Mirrored condition.
//
// The probe is labelled as the operator's own Alert, which the allowedKinds
// policy exempts, so no AlertRoutingPolicy (not even one in the operator's
// namespace) can make the check fail.
type finalizerPolicyCheck struct {
	Client client.Client
	// Namespace is where the probe is dry-run: the operator's own.
	Namespace string
	// MirrorOn says whether the policy should be in effect (mirror on) or
	// absent (mirror off: every new object would gain a finalizer the
	// operator then removes).
	MirrorOn bool
	Interval time.Duration

	mu    sync.Mutex
	state policyState
}

// The check of the mirror finalizer policy dry-runs creating an Alert in
// the operator's own namespace (nothing is stored).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=create

// NeedLeaderElection: every replica checks and reports its own metric.
func (c *finalizerPolicyCheck) NeedLeaderElection() bool { return false }

// Start checks until ctx ends.
func (c *finalizerPolicyCheck) Start(ctx context.Context) error {
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultPolicyCheckInterval
	}
	log := ctrl.LoggerFrom(ctx).WithName("mirror-finalizer-policy")
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		s, err := c.check(ctx)
		if ctx.Err() != nil {
			return
		}
		metrics.MirrorFinalizerPolicyActive.Set(boolGauge(s.active))
		c.mu.Lock()
		changed := s != c.state
		c.state = s
		c.mu.Unlock()
		if !changed {
			return
		}
		switch {
		case c.MirrorOn && !s.active:
			log.Error(err, "WARNING: the mirror finalizer policy is not in effect: an object deleted right after its creation may leave no row in PostgreSQL; install config/components/mirror-finalizer (config/default includes it)",
				"policy", FinalizerPolicyName, "namespace", c.Namespace, "detail", s.detail)
		case !c.MirrorOn && s.active:
			log.Info("WARNING: the mirror finalizer policy is in effect but the mirror is off: every new object gains a finalizer the operator then removes; install config/without-mirror, or delete the MutatingAdmissionPolicyBinding",
				"policy", FinalizerPolicyName)
		default:
			log.Info("Mirror finalizer policy checked", "policy", FinalizerPolicyName, "active", s.active, "detail", s.detail)
		}
	}, interval)
	return nil
}

// check dry-runs the probe Alert once.
func (c *finalizerPolicyCheck) check(ctx context.Context) (policyState, error) {
	probe := &v1.Alert{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "mirror-probe-", Namespace: c.Namespace,
			Labels: map[string]string{v1.OriginLabel: v1.OriginOperator},
		},
		Spec: v1.AlertSpec{Service: "alertbridge", Kind: "mirror_probe", Title: "dry-run probe of the mirror finalizer policy"},
	}
	if err := c.Client.Create(ctx, probe, client.DryRunAll); err != nil {
		return policyState{checked: true, detail: fmt.Sprintf("a dry-run Alert in namespace %s failed (%s; see the operator's log)", c.Namespace, reasonOf(err))}, err
	}
	if slices.Contains(probe.Finalizers, v1.MirrorFinalizer) {
		return policyState{checked: true, active: true, detail: fmt.Sprintf("a dry-run Alert in namespace %s came back with the finalizer", c.Namespace)}, nil
	}
	return policyState{checked: true, detail: fmt.Sprintf("a dry-run Alert in namespace %s came back without the finalizer", c.Namespace)}, nil
}

// reasonOf names an API error without the parts that change from one
// call to the next (the generated name).
func reasonOf(err error) string {
	if r := apierrors.ReasonForError(err); r != metav1.StatusReasonUnknown {
		return string(r)
	}
	return "no answer from the API server"
}

// State is the outcome of the last check.
func (c *finalizerPolicyCheck) State() policyState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

var _ manager.LeaderElectionRunnable = &finalizerPolicyCheck{}
