package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// TestTriageCondition: a webhook waiting for its next attempt leaves the
// condition Unknown unless an action already failed, which it never hides.
func TestTriageCondition(t *testing.T) {
	job := outcome{ok: true, reason: v1.ReasonJobCreated, message: "triage Job j created"}
	badJob := outcome{reason: v1.ReasonServiceAccountNotAllowed, message: "no triage Job"}
	retrying := outcome{pending: true, reason: v1.ReasonWebhookRetrying, message: "triage webhook attempt 1 of 8 failed"}
	delivered := outcome{ok: true, reason: v1.ReasonWebhookDelivered, message: "triage webhook delivered"}
	failed := outcome{reason: v1.ReasonWebhookFailed, message: "triage webhook failed after 8 attempts"}
	for _, tc := range []struct {
		name    string
		results []outcome
		status  metav1.ConditionStatus
		reason  string
	}{
		{"nothing configured", nil, metav1.ConditionFalse, v1.ReasonNoTriageAction},
		{"job and webhook delivered", []outcome{job, delivered}, metav1.ConditionTrue, v1.ReasonJobAndWebhook},
		{"webhook retrying", []outcome{job, retrying}, metav1.ConditionUnknown, v1.ReasonWebhookRetrying},
		{"job refused, webhook retrying", []outcome{badJob, retrying}, metav1.ConditionFalse, v1.ReasonServiceAccountNotAllowed},
		{"webhook given up", []outcome{job, failed}, metav1.ConditionFalse, v1.ReasonWebhookFailed},
	} {
		c := triageCondition(tc.results, 3)
		if c.Status != tc.status || c.Reason != tc.reason || c.ObservedGeneration != 3 {
			t.Errorf("%s: got %s/%s, want %s/%s", tc.name, c.Status, c.Reason, tc.status, tc.reason)
		}
	}
}
