package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/notify"
)

// Event reasons of the notification controllers.
const (
	EventNotificationFailed = "NotificationFailed"
)

// secretKey is the key of r's Secret that holds its credential.
func secretKey(r *v1.Receiver) string {
	if r.Spec.SecretRef.Key != "" {
		return r.Spec.SecretRef.Key
	}
	switch r.Spec.Type {
	case v1.ReceiverPagerDuty:
		return v1.DefaultPagerDutyKey
	case v1.ReceiverSlack:
		return v1.DefaultSlackKey
	}
	return v1.DefaultWebhookKey
}

// credentialError says why a Receiver's credential cannot be used, as the
// reason of its Ready condition; retryable when it may yet appear (the
// Secret or the key created later).
type credentialError struct {
	reason    string
	msg       string
	retryable bool
}

func (e *credentialError) Error() string { return e.msg }

// credential reads r's credential: one get of its Secret by name (the
// operator never lists or watches Secrets), only someone allowed to get
// it may have named (admission policy alertbridge-receiver-credentials).
// A ServiceAccount token is never used, whoever named it. The value is
// never part of an error: for Slack it is the webhook URL.
func credential(ctx context.Context, reader client.Reader, grants Grants, r *v1.Receiver) (string, *credentialError) {
	ref, key := r.Spec.SecretRef, secretKey(r)
	var s corev1.Secret
	if err := reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &credentialError{v1.ReasonSecretMissing, fmt.Sprintf("spec.secretRef: Secret %s not found", ref.Name), true}
		}
		if err := grants.notGranted(err, r.Namespace, "read Secrets", CredentialsRole); isNotGranted(err) {
			return "", &credentialError{v1.ReasonNotGranted, "spec.secretRef: " + err.Error(), true}
		}
		return "", &credentialError{v1.ReasonSecretMissing, fmt.Sprintf("spec.secretRef: Secret %s cannot be read now", ref.Name), true}
	}
	if err := refuseCredentials(&s, "spec.secretRef"); err != nil {
		return "", &credentialError{v1.ReasonSecretNotAllowed, err.Error(), false}
	}
	raw, ok := s.Data[key]
	value := strings.TrimSpace(string(raw))
	if !ok || value == "" {
		return "", &credentialError{v1.ReasonKeyMissing, fmt.Sprintf("spec.secretRef: Secret %s has no key %s (or it is empty)", ref.Name, key), true}
	}
	if r.Spec.Type == v1.ReceiverSlack {
		u, err := url.Parse(value)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", &credentialError{v1.ReasonInvalidSecret,
				fmt.Sprintf("spec.secretRef: key %s of Secret %s is not an http(s) URL (Slack's incoming webhook URL goes there)", key, ref.Name), false}
		}
	}
	return value, nil
}

// pendingSet is what this replica has yet to deliver, by key (an
// Incident's notification for one Receiver, or a Receiver's digest); it
// feeds alertbridge_notifications_pending.
type pendingSet struct {
	mu sync.Mutex
	m  map[string]v1.ReceiverType
}

func (p *pendingSet) set(key string, typ v1.ReceiverType, pending bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]v1.ReceiverType{}
	}
	old, had := p.m[key]
	switch {
	case pending && !had:
		p.m[key] = typ
		metrics.NotificationsPending.WithLabelValues(string(typ)).Inc()
	case pending && old != typ:
		p.m[key] = typ
		metrics.NotificationsPending.WithLabelValues(string(old)).Dec()
		metrics.NotificationsPending.WithLabelValues(string(typ)).Inc()
	case !pending && had:
		delete(p.m, key)
		metrics.NotificationsPending.WithLabelValues(string(old)).Dec()
	}
}

// forget drops every key under prefix (a deleted Incident or Receiver).
func (p *pendingSet) forget(prefix string) {
	p.retain(prefix, func(string) bool { return false })
}

// retain drops the keys under prefix that keep does not want.
func (p *pendingSet) retain(prefix string, keep func(string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, typ := range p.m {
		if strings.HasPrefix(k, prefix) && !keep(k) {
			delete(p.m, k)
			metrics.NotificationsPending.WithLabelValues(string(typ)).Dec()
		}
	}
}

// countAttempt counts one attempt's result in the deliveries metric.
func countAttempt(typ v1.ReceiverType, res notify.Result, finished bool) {
	result := metrics.ResultDelivered
	switch {
	case res.Err != nil && finished:
		result = metrics.ResultFailed
	case res.Err != nil:
		result = metrics.ResultRetrying
	}
	metrics.NotificationDeliveries.WithLabelValues(string(typ), result).Inc()
}
