package kube

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UTC is t in UTC for JSON answers and payloads, nil when t is unset or
// zero, so that an absent time is absent rather than year 1.
func UTC(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
