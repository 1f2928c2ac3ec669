package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/slo"
)

// Events of the SLOPolicy controller; reasons are constants so they can be
// filtered (kubectl get events --field-selector reason=ReleaseBlocked).
const (
	EventReleaseAllowed = "ReleaseAllowed"
	EventReleaseWarned  = "ReleaseWarned"
	EventReleaseBlocked = "ReleaseBlocked"
	EventBypassStarted  = "BypassStarted"
	EventBypassEnded    = "BypassEnded"
	EventBypassInvalid  = "BypassInvalid"
	EventSecretRefused  = v1.ReasonSecretNotAllowed
)

// maxQueryTimeout bounds one PromQL query; shorter intervals bound it more.
const maxQueryTimeout = 10 * time.Second

// SourceFactory builds the SLI source of a policy.
type SourceFactory func(url string, auth slo.Auth, timeout time.Duration) (slo.Source, error)

// SLOPolicyReconciler evaluates SLOPolicies every evaluationInterval and
// publishes the release gate in status.
type SLOPolicyReconciler struct {
	client.Client
	// APIReader reads Secrets directly, so the operator never caches every
	// Secret in the cluster.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// NewSource defaults to the Prometheus HTTP API client.
	NewSource SourceFactory
	// Intake raises and resolves the slo_burn Alerts.
	Intake BurnIntake
	// Grants says how a namespace lets the operator read its Secrets.
	Grants Grants

	// sources keeps one client (and its connections) per policy, replaced
	// when the URL, timeout or credentials change.
	sourcesMu sync.Mutex
	sources   map[types.NamespacedName]cachedSource
}

type cachedSource struct {
	key string
	src slo.Source
}

// The SLOPolicy controller evaluates each SLOPolicy on its interval.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=slopolicies,verbs=get;list;watch
// The SLOPolicy controller writes the gate decision, the observed SLIs and
// the bypass in status.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=slopolicies/status,verbs=patch
// The SLOPolicy controller blocks the gate on open Incidents of the service
// (blockOnOpenIncidents).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=get;list;watch
// The Prometheus credentials' Secret is read only in namespaces that grant
// it (the ClusterRole alertbridge-credentials bound there).
//
// The SLOPolicy controller records Events on SLOPolicies (gate, bypass).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile evaluates one SLOPolicy and schedules its next evaluation.
func (r *SLOPolicyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p v1.SLOPolicy
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		r.forgetSource(req.NamespacedName, "")
		return reconcile.Result{}, r.sweepBurnAlerts(ctx, req.Namespace, req.Name, nil, r.Clock.Now())
	}
	log := ctrl.LoggerFrom(ctx).WithValues("slopolicy", klog.KObj(&p))
	ctx = ctrl.LoggerInto(ctx, log)

	now := r.Clock.Now()
	incident, err := r.blockingIncident(ctx, &p)
	if err != nil {
		return reconcile.Result{}, err
	}
	// The SLIs are read at the whole second status records as
	// lastEvaluatedAt: asked for that instant, Prometheus answers with the
	// very figures the gate decided on, so anyone can check a decision.
	observed, credErr := r.observe(ctx, &p, now.Truncate(time.Second))
	bypassReq, bypassErr := slo.ParseBypass(p.Annotations)
	bypass := slo.ResolveBypass(bypassReq, p.Status.Bypass, maxBypass(&p), now)
	objectives, err := slo.ParseObjectives(p.Spec.Objectives)
	if err != nil {
		// The CRD's pattern makes this unreachable for stored objects.
		observed = slo.Observation{SourceErr: err}
	}
	minLeft, blockOnBurn := budgetGate(&p)
	res := slo.Decide(slo.Input{
		Mode: p.Spec.Gate.Mode, NoData: p.Spec.Gate.NoData,
		Objectives: objectives, Observed: observed,
		Incident: incident, BypassActive: bypass != nil && bypass.Active,
		MinBudgetPercent: minLeft, BlockOnBurn: blockOnBurn,
	})
	burns, err := r.resolveBurnAlerts(ctx, &p, observed, now)
	if err != nil {
		return reconcile.Result{}, err
	}

	// Every evaluation writes: lastEvaluatedAt is the heartbeat consumers
	// check for Stale, so an evaluation always changes status.
	before := p.DeepCopy()
	setStatus(&p, res, observed, bypass, bypassErr, now)
	setBudgetStatus(&p, observed)
	secret := ""
	if ref := p.Spec.Source.Prometheus.SecretRef; ref != nil {
		secret = ref.Name
	}
	setCredentialsCondition(&p.Status.Conditions, secret, credErr, p.Generation)
	p.Status.BurnAlerts = burns
	if err := r.Status().Patch(ctx, &p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to write the status of SLOPolicy %s: %w", klog.KObj(&p), err)
	}
	// Only a written transition is announced; a conflict retries silently.
	r.recordTransitions(before, &p)
	// Raised after status holds each firing's since, so a retry reuses its key.
	if err := r.writeBurnAlertRefs(ctx, &p, observed); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.sweepBurnAlerts(ctx, p.Namespace, p.Name, &p, now); err != nil {
		return reconcile.Result{}, err
	}
	metrics.GateDecisions.WithLabelValues(string(res.Decision)).Inc()
	log.V(1).Info("Evaluated", "decision", res.Decision, "reason", res.Reason)
	return reconcile.Result{RequeueAfter: nextEvaluation(&p, now)}, nil
}

// nextEvaluation is the evaluation interval, or sooner when a bypass ends
// before it: the bypass ends on this timer, not on the next poll.
func nextEvaluation(p *v1.SLOPolicy, now time.Time) time.Duration {
	next := slo.Interval(p)
	if b := p.Status.Bypass; b != nil && b.Active && b.Until != nil {
		next = min(next, max(b.Until.Sub(now), time.Millisecond))
	}
	return next
}

func maxBypass(p *v1.SLOPolicy) time.Duration {
	if p.Spec.Gate.MaxBypass != nil {
		return p.Spec.Gate.MaxBypass.Duration
	}
	return 24 * time.Hour
}

// observe queries the policy's source; failures become SourceUnavailable.
// It also returns what reading the credentials' Secret gave (nil when it
// was read, or none is named).
func (r *SLOPolicyReconciler) observe(ctx context.Context, p *v1.SLOPolicy, now time.Time) (slo.Observation, error) {
	auth, credErr := r.credentials(ctx, p)
	if credErr != nil {
		return slo.Observation{SourceErr: credErr}, credErr
	}
	src, err := r.source(p, auth)
	if err != nil {
		return slo.Observation{SourceErr: err}, nil
	}
	return slo.Observe(ctx, src, p, now), nil
}

// credentials reads the Secret spec.source.prometheus.secretRef names (one
// get by name), if any.
func (r *SLOPolicyReconciler) credentials(ctx context.Context, p *v1.SLOPolicy) (slo.Auth, error) {
	ref := p.Spec.Source.Prometheus.SecretRef
	if ref == nil {
		return slo.Auth{}, nil
	}
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}, &s); err != nil {
		return slo.Auth{}, fmt.Errorf("spec.source.prometheus.secretRef: failed to read Secret %s: %w", ref.Name,
			r.Grants.notGranted(err, p.Namespace, "read Secrets", CredentialsRole))
	}
	if err := refuseCredentials(&s, "spec.source.prometheus.secretRef"); err != nil {
		return slo.Auth{}, err
	}
	auth, err := slo.AuthFromSecret(s.Data)
	if err != nil {
		return slo.Auth{}, fmt.Errorf("secret %s of spec.source.prometheus.secretRef: %w", ref.Name, err)
	}
	return auth, nil
}

func (r *SLOPolicyReconciler) source(p *v1.SLOPolicy, auth slo.Auth) (slo.Source, error) {
	prom := p.Spec.Source.Prometheus
	timeout := min(maxQueryTimeout, max(slo.Interval(p), time.Second))
	name := client.ObjectKeyFromObject(p)
	key := fmt.Sprintf("%s|%s|%s", prom.URL, timeout, auth.Key())
	r.sourcesMu.Lock()
	cached, ok := r.sources[name]
	r.sourcesMu.Unlock()
	if ok && cached.key == key {
		return cached.src, nil
	}
	src, err := r.NewSource(prom.URL, auth, timeout)
	if err != nil {
		return nil, err
	}
	r.forgetSource(name, key)
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	if r.sources == nil {
		r.sources = map[types.NamespacedName]cachedSource{}
	}
	r.sources[name] = cachedSource{key: key, src: src}
	return src, nil
}

// forgetSource drops the cached client of a policy unless it has keep.
func (r *SLOPolicyReconciler) forgetSource(name types.NamespacedName, keep string) {
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	cached, ok := r.sources[name]
	if !ok || cached.key == keep {
		return
	}
	delete(r.sources, name)
	if c, ok := cached.src.(interface{ Close() }); ok {
		c.Close()
	}
}

// blockingIncident is the worst open Incident of the policy's service and
// env at or above gate.blockOnOpenIncidents; nil when the gate ignores
// Incidents or none is open.
func (r *SLOPolicyReconciler) blockingIncident(ctx context.Context, p *v1.SLOPolicy) (*slo.OpenIncident, error) {
	threshold := p.Spec.Gate.BlockOnOpenIncidents
	if threshold == nil {
		return nil, nil
	}
	var list v1.IncidentList
	if err := r.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return nil, fmt.Errorf("failed to list Incidents in %s: %w", p.Namespace, err)
	}
	var open []slo.OpenIncident
	for i := range list.Items {
		inc := &list.Items[i]
		if inc.Spec.Service == p.Spec.Service && inc.Spec.Env == p.Spec.Env &&
			inc.Spec.State.IsOpen() && inc.Spec.Severity.AtLeast(*threshold) {
			open = append(open, slo.OpenIncident{Name: inc.Name, Severity: inc.Spec.Severity})
		}
	}
	if len(open) == 0 {
		return nil, nil
	}
	worst := slices.MinFunc(open, func(a, b slo.OpenIncident) int {
		if d := a.Severity.Rank() - b.Severity.Rank(); d != 0 {
			return d
		}
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return &worst, nil
}

// SetupWithManager watches SLOPolicies (spec and bypass annotations, not
// our own status writes), the Incidents of their services, and slo_burn
// Alerts left firing by a deleted policy.
func (r *SLOPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.NewSource == nil {
		r.NewSource = func(url string, auth slo.Auth, timeout time.Duration) (slo.Source, error) {
			return slo.NewClient(url, auth, timeout)
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("slopolicy").
		For(&v1.SLOPolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1.Incident{}, handler.EnqueueRequestsFromMapFunc(r.policiesOfIncident),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1.Alert{}, handler.EnqueueRequestsFromMapFunc(r.policyOfOrphanBurn)).
		Complete(r)
}

func (r *SLOPolicyReconciler) policiesOfIncident(ctx context.Context, o client.Object) []reconcile.Request {
	inc, ok := o.(*v1.Incident)
	if !ok {
		return nil
	}
	var list v1.SLOPolicyList
	if err := r.List(ctx, &list, client.InNamespace(inc.Namespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list SLOPolicies for an Incident", "incident", klog.KObj(inc))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.Gate.BlockOnOpenIncidents != nil && p.Spec.Service == inc.Spec.Service && p.Spec.Env == inc.Spec.Env {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		}
	}
	return reqs
}
