package controllers

import (
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/slo"
)

// Reasons of the Ready condition (the gate's reasons are in the API).
const (
	readyEvaluated     = "Evaluated"
	readyInvalidBypass = "InvalidBypass"
)

// setStatus rebuilds status from one evaluation. gate.since moves only when
// the decision changes; conditions keep their transition times otherwise.
func setStatus(p *v1.SLOPolicy, res slo.Result, obs slo.Observation, bypass *v1.BypassStatus, bypassErr error, now time.Time) {
	st := &p.Status
	ts := metav1.NewTime(now.Truncate(time.Second))
	st.ObservedGeneration = p.Generation
	st.LastEvaluatedAt = &ts
	st.Observed = nil
	if res.ObservedLatencyP95Ms != "" || res.ObservedErrorRatePercent != "" {
		st.Observed = &v1.ObservedSLIs{LatencyP95Ms: res.ObservedLatencyP95Ms, ErrorRatePercent: res.ObservedErrorRatePercent}
	}
	since := &ts
	if st.Gate != nil && st.Gate.Decision == res.Decision && st.Gate.Since != nil {
		since = st.Gate.Since
	}
	st.Gate = &v1.GateStatus{Decision: res.Decision, Reason: res.Reason, Message: clip.Mark(res.Message, maxMessage), Since: since}
	st.Bypass = bypass

	ready := metav1.Condition{Type: v1.SLOConditionReady, Status: metav1.ConditionTrue, Reason: readyEvaluated, Message: "the source answered"}
	switch {
	case obs.SpecErr != nil:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, v1.ReasonInvalidObjectives, clip.Mark(obs.SpecErr.Error(), maxMessage)
	case obs.SourceErr != nil:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, v1.ReasonSourceUnavailable, clip.Mark(obs.SourceErr.Error(), maxMessage)
		if refused := (*secretNotAllowedError)(nil); errors.As(obs.SourceErr, &refused) {
			ready.Reason = v1.ReasonSecretNotAllowed
		}
	case bypassErr != nil:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, readyInvalidBypass, clip.Mark("the bypass is ignored: "+bypassErr.Error(), maxMessage)
	}
	released := metav1.ConditionTrue
	if !res.Allowed() {
		released = metav1.ConditionFalse
	}
	for _, c := range []metav1.Condition{
		ready,
		{Type: v1.SLOConditionSLOMet, Status: res.SLOMet, Reason: res.SLOMetReason, Message: res.SLOMetMessage},
		{Type: v1.SLOConditionReleaseAllowed, Status: released, Reason: res.Reason, Message: clip.Mark(string(res.Decision)+": "+res.Message, maxMessage)},
	} {
		c.ObservedGeneration = p.Generation
		c.LastTransitionTime = ts
		meta.SetStatusCondition(&st.Conditions, c)
	}
}

// maxMessage is the CRD's bound on condition and gate messages.
const maxMessage = 1024

// recordTransitions emits Events for decision changes and bypass start and
// end only, never for an unchanged evaluation.
func (r *SLOPolicyReconciler) recordTransitions(before, after *v1.SLOPolicy) {
	prevGate, gate := before.Status.Gate, after.Status.Gate
	if prevGate == nil || prevGate.Decision != gate.Decision {
		typ, reason := corev1.EventTypeNormal, EventReleaseAllowed
		switch gate.Decision {
		case v1.DecisionBlock:
			typ, reason = corev1.EventTypeWarning, EventReleaseBlocked
		case v1.DecisionWarn:
			typ, reason = corev1.EventTypeWarning, EventReleaseWarned
		}
		r.Recorder.Eventf(after, nil, typ, reason, "Evaluate", "release gate %s (%s): %s", gate.Decision, gate.Reason, gate.Message)
	}
	wasActive := before.Status.Bypass != nil && before.Status.Bypass.Active
	b := after.Status.Bypass
	switch active := b != nil && b.Active; {
	case active && !wasActive:
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, EventBypassStarted, "Bypass",
			"emergency bypass by %q until %s: %s", b.By, b.Until.UTC().Format(time.RFC3339), b.Reason)
	case !active && wasActive:
		r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, EventBypassEnded, "Bypass",
			"emergency bypass by %q ended: %s", before.Status.Bypass.By, before.Status.Bypass.Reason)
	}
	prevReady := meta.FindStatusCondition(before.Status.Conditions, v1.SLOConditionReady)
	ready := meta.FindStatusCondition(after.Status.Conditions, v1.SLOConditionReady)
	if ready.Reason == readyInvalidBypass && (prevReady == nil || prevReady.Reason != readyInvalidBypass) {
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, EventBypassInvalid, "Bypass", "%s", ready.Message)
	}
	if ready.Reason == v1.ReasonSecretNotAllowed && (prevReady == nil || prevReady.Reason != v1.ReasonSecretNotAllowed) {
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, EventSecretRefused, "Evaluate", "%s", ready.Message)
	}
}
