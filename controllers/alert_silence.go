package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/policy"
	"github.com/alertbridge/alertbridge/internal/silence"
)

// Event reasons of silencing, on the Alert.
const (
	EventSilenced     = "Silenced"
	EventSilenceEnded = v1.ReasonSilenceEnded
)

// silenceRules are the Silences of the namespace, judged against its
// policy's maxDuration, from the cache.
func (r *AlertReconciler) silenceRules(ctx context.Context, ns string, pol policy.Policy) ([]silence.Rule, error) {
	var list v1.SilenceList
	if err := r.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("failed to list the Silences of %s: %w", ns, err)
	}
	return silence.JudgeAll(list.Items, pol.SilenceMaxDuration()), nil
}

// applySilences sets each decided Alert's Silenced condition from the
// Silences of its namespace at now (internal/silence decides, with
// Alertmanager's matchers), and returns when a matching Silence next starts
// or ends, so the Alert is back in play at a Silence's end on this timer,
// with no action by anyone. An Alert is still folded and counted while
// silenced; the condition is what the claim rule, conversion and
// notifications obey. (An Alert's first decision, makeCanonical, sets it
// in the same write.)
func (r *AlertReconciler) applySilences(ctx context.Context, alerts []*v1.Alert, rules []silence.Rule, now time.Time) (time.Time, error) {
	var next time.Time
	for _, a := range alerts {
		if a.Status.Phase == "" || a.Status.Phase == v1.AlertDeduplicated || a.DeletionTimestamp != nil {
			continue
		}
		d := silence.Decide(a, rules, now)
		next = earliest(next, d.Next)
		orig := a.DeepCopy()
		if !silence.SetCondition(a, d, now) {
			continue
		}
		if err := r.patchStatus(ctx, a, orig); err != nil {
			return time.Time{}, fmt.Errorf("failed to write the Silenced condition of Alert %s: %w", klog.KObj(a), err)
		}
		r.recordSilencing(a, orig, d)
		ctrl.LoggerFrom(ctx).V(1).Info("Alert silencing changed", "alert", klog.KObj(a), "silenced", silence.Silenced(&a.Status))
	}
	return next, nil
}

// recordSilencing records an Event when a was silenced or let go since
// orig; another Silence taking over is no transition.
func (r *AlertReconciler) recordSilencing(a, orig *v1.Alert, d silence.Decision) {
	switch now, was := silence.Silenced(&a.Status), silence.Silenced(&orig.Status); {
	case now && !was:
		r.Recorder.Eventf(a, d.Active[0], corev1.EventTypeNormal, EventSilenced, "Silence", "%s", d.Message())
	case !now && was:
		r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, EventSilenceEnded, "Silence",
			"No active Silence matches the Alert any more; it is back in play")
	}
}

// alertsOfSilence maps a Silence to the fingerprint keys of the Alerts of
// its namespace it matches, whatever the time, from the cache. An update
// maps the old and the new Silence, so Alerts a Silence stops matching are
// looked at again too; so are those of a deleted Silence.
func (r *AlertReconciler) alertsOfSilence(ctx context.Context, s *v1.Silence) []FingerprintKey {
	rule := silence.Judge(s, silence.AbsoluteMaxDuration)
	if rule.Invalid != nil && rule.Invalid.Reason == v1.ReasonInvalidMatcher {
		return nil // it never silenced anything
	}
	var list v1.AlertList
	if err := r.List(ctx, &list, client.InNamespace(s.Namespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list the Alerts a Silence matches", "silence", klog.KObj(s))
		return nil
	}
	seen := map[FingerprintKey]bool{}
	var keys []FingerprintKey
	for i := range list.Items {
		a := &list.Items[i]
		if a.Status.Phase == v1.AlertDeduplicated || !rule.Matches(silence.Labels(a)) {
			continue
		}
		k := FingerprintKey{Namespace: a.Namespace, Fingerprint: fingerprint.Key(a)}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// earliest is the earlier of two moments, zero meaning "never".
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
