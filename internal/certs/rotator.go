package certs

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Timing of the Rotator's loop.
const (
	// DefaultCheckInterval bounds the sleep between two looks at the
	// objects, so a change the watches missed is still repaired.
	DefaultCheckInterval = time.Hour
	// retryInterval is the wait after a failed attempt.
	retryInterval = 10 * time.Second
)

// labels mark the objects the Rotator creates.
func labels(component string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "alertbridge", "app.kubernetes.io/component": component}
}

// Rotator keeps the HTTP API's CA and serving certificate valid and
// publishes the CA certificate. It is a manager.Runnable that runs on the
// controller manager's leader only; it reads and writes its objects
// directly (no cache), under a Role that names them.
type Rotator struct {
	Client kubernetes.Interface
	// Secret is the serving Secret (tls.crt, tls.key, ca.crt).
	Secret types.NamespacedName
	// CASecret holds the CA (ca.crt, ca.key) when Manage is set.
	CASecret types.NamespacedName
	// CAConfigMap receives ca.crt for clients.
	CAConfigMap types.NamespacedName
	// Names are the DNS names and IP addresses the serving certificate is
	// for; the first is its common name.
	Names []string
	// Manage issues and renews the CA and the serving certificate; without
	// it the serving Secret is someone else's and only its ca.crt is
	// published.
	Manage bool
	// CAValidity and CertValidity default to DefaultCAValidity and
	// DefaultCertValidity.
	CAValidity, CertValidity time.Duration
	// CheckInterval defaults to DefaultCheckInterval.
	CheckInterval time.Duration
	// Nudge wakes the Rotator early: the watches signal every change of
	// its objects (including their deletion).
	Nudge <-chan struct{}
	// Clock is injected so tests control time; nil means the real clock.
	Clock clock.WithTicker
}

// NeedLeaderElection is true: one writer renews; every API replica serves.
func (*Rotator) NeedLeaderElection() bool { return true }

// Start keeps the objects valid until ctx ends.
func (r *Rotator) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("certs").WithValues("secret", klog.KRef(r.Secret.Namespace, r.Secret.Name))
	ctx = ctrl.LoggerInto(ctx, log)
	for {
		wait, err := r.Ensure(ctx)
		if err != nil {
			log.Error(err, "Failed to keep the serving certificate valid; retrying", "after", retryInterval)
			wait = retryInterval
		}
		t := r.clock().NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		case <-r.Nudge:
			t.Stop()
		}
	}
}

// Ensure makes the CA's Secret hold a valid CA and the serving Secret a
// valid certificate it signed (with Manage), publishes the CA certificate,
// and returns how long until it next needs a look. A write that races
// another replica's (a conflict) is retried from a fresh read.
func (r *Rotator) Ensure(ctx context.Context) (time.Duration, error) {
	var next time.Time
	var caPEM []byte
	if r.Manage {
		ca, err := r.ensureCA(ctx)
		if err != nil {
			return 0, err
		}
		if next, err = r.ensureServing(ctx, ca); err != nil {
			return 0, err
		}
		caPEM = ca.certPEM
	} else {
		s, err := r.Client.CoreV1().Secrets(r.Secret.Namespace).Get(ctx, r.Secret.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// Not issued yet by whoever keeps it: the watch wakes us.
		case err != nil:
			return 0, fmt.Errorf("failed to read Secret %s: %w", r.Secret, err)
		default:
			caPEM = s.Data[CACertKey]
		}
	}
	if len(caPEM) > 0 {
		if err := r.publish(ctx, caPEM); err != nil {
			return 0, err
		}
	}
	wait := r.checkInterval()
	if d := next.Sub(r.clock().Now()); !next.IsZero() && d < wait {
		wait = max(d, 0)
	}
	return wait, nil
}

// conflicting are the errors a racing writer causes; a fresh read fixes them.
func conflicting(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }

// ensureCA returns the CA, creating or renewing its Secret when due. A
// serving Secret written before the CA had a Secret of its own holds ca.key
// beside the certificate: that CA is adopted, so clients keep trusting it.
func (r *Rotator) ensureCA(ctx context.Context) (*keyPair, error) {
	var ca *keyPair
	secrets := r.Client.CoreV1().Secrets(r.CASecret.Namespace)
	err := retry.OnError(retry.DefaultRetry, conflicting, func() error {
		now := r.clock().Now()
		s, err := secrets.Get(ctx, r.CASecret.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			data, err := r.adoptOrIssueCA(ctx, now)
			if err != nil {
				return err
			}
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: r.CASecret.Name, Namespace: r.CASecret.Namespace, Labels: labels("api-ca")},
				Type:       corev1.SecretTypeOpaque,
				Data:       data,
			}
			if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
				return err
			}
			ctrl.LoggerFrom(ctx).Info("Created the HTTP API's CA", "caSecret", klog.KRef(r.CASecret.Namespace, r.CASecret.Name))
		case err != nil:
			return err
		default:
			if p := planCA(s.Data, now); p.ca {
				fresh, err := newCA(r.Secret.Name, now, r.caValidity())
				if err != nil {
					return err
				}
				s = s.DeepCopy()
				s.Data = map[string][]byte{CACertKey: fresh.certPEM, CAKeyKey: fresh.keyPEM}
				if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
					return err
				}
				ctrl.LoggerFrom(ctx).Info("Renewed the HTTP API's CA: clients need the new ca.crt", "reason", p.reason)
			}
		}
		ca, err = parsePair(s.Data[CACertKey], s.Data[CAKeyKey])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to keep the CA in Secret %s valid: %w", r.CASecret, err)
	}
	return ca, nil
}

// adoptOrIssueCA is the data of a new CA Secret: the CA an older serving
// Secret holds, if it is still good, else a new one.
func (r *Rotator) adoptOrIssueCA(ctx context.Context, now time.Time) (map[string][]byte, error) {
	old, err := r.Client.CoreV1().Secrets(r.Secret.Namespace).Get(ctx, r.Secret.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err == nil && len(old.Data[CAKeyKey]) > 0 {
		data := map[string][]byte{CACertKey: old.Data[CACertKey], CAKeyKey: old.Data[CAKeyKey]}
		if !planCA(data, now).ca {
			return data, nil
		}
	}
	ca, err := newCA(r.Secret.Name, now, r.caValidity())
	if err != nil {
		return nil, err
	}
	return map[string][]byte{CACertKey: ca.certPEM, CAKeyKey: ca.keyPEM}, nil
}

// ensureServing makes the serving Secret hold a certificate ca signed for
// the names, ca's certificate, and no CA key; it returns when the serving
// certificate or the CA is next due.
func (r *Rotator) ensureServing(ctx context.Context, ca *keyPair) (time.Time, error) {
	var next time.Time
	secrets := r.Client.CoreV1().Secrets(r.Secret.Namespace)
	err := retry.OnError(retry.DefaultRetry, conflicting, func() error {
		now := r.clock().Now()
		s, err := secrets.Get(ctx, r.Secret.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			data, err := r.issueServing(ca, now)
			if err != nil {
				return err
			}
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: r.Secret.Name, Namespace: r.Secret.Namespace, Labels: labels("api-tls")},
				Type:       corev1.SecretTypeTLS,
				Data:       data,
			}
			if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
				return err
			}
			ctrl.LoggerFrom(ctx).Info("Created the HTTP API's serving certificate", "names", r.Names)
		case err != nil:
			return err
		default:
			p := planCert(s.Data, ca, r.Names, now)
			_, hasCAKey := s.Data[CAKeyKey]
			if !p.cert && !hasCAKey && bytes.Equal(s.Data[CACertKey], ca.certPEM) {
				break
			}
			data := map[string][]byte{CertKey: s.Data[CertKey], KeyKey: s.Data[KeyKey], CACertKey: ca.certPEM}
			if p.cert {
				if data, err = r.issueServing(ca, now); err != nil {
					return err
				}
			}
			s = s.DeepCopy()
			s.Data = data
			if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
				return err
			}
			ctrl.LoggerFrom(ctx).Info("Updated the HTTP API's serving certificate", "renewed", p.cert, "reason", p.reason,
				"removedCAKey", hasCAKey, "names", r.Names)
		}
		next = nextRenewal(map[string][]byte{CACertKey: ca.certPEM, CAKeyKey: ca.keyPEM}, s.Data)
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("failed to keep Secret %s valid: %w", r.Secret, err)
	}
	return next, nil
}

// issueServing is the data of a serving Secret with a new certificate ca
// signed at now.
func (r *Rotator) issueServing(ca *keyPair, now time.Time) (map[string][]byte, error) {
	leaf, err := newServing(ca, r.Names, now, r.certValidity())
	if err != nil {
		return nil, err
	}
	return map[string][]byte{CertKey: leaf.certPEM, KeyKey: leaf.keyPEM, CACertKey: ca.certPEM}, nil
}

// publish makes the ConfigMap hold caPEM as ca.crt.
func (r *Rotator) publish(ctx context.Context, caPEM []byte) error {
	cms := r.Client.CoreV1().ConfigMaps(r.CAConfigMap.Namespace)
	err := retry.OnError(retry.DefaultRetry, conflicting, func() error {
		cm, err := cms.Get(ctx, r.CAConfigMap.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: r.CAConfigMap.Name, Namespace: r.CAConfigMap.Namespace, Labels: labels("api-ca")},
				Data:       map[string]string{CACertKey: string(caPEM)},
			}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			return err
		case err != nil:
			return err
		case cm.Data[CACertKey] == string(caPEM) && len(cm.Data) == 1 && len(cm.BinaryData) == 0:
			return nil
		}
		cm = cm.DeepCopy()
		cm.Data, cm.BinaryData = map[string]string{CACertKey: string(caPEM)}, nil
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to publish the CA certificate in ConfigMap %s: %w", r.CAConfigMap, err)
	}
	return nil
}

func (r *Rotator) clock() clock.WithTicker {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

func (r *Rotator) caValidity() time.Duration {
	if r.CAValidity <= 0 {
		return DefaultCAValidity
	}
	return r.CAValidity
}

func (r *Rotator) certValidity() time.Duration {
	if r.CertValidity <= 0 {
		return DefaultCertValidity
	}
	return r.CertValidity
}

func (r *Rotator) checkInterval() time.Duration {
	if r.CheckInterval <= 0 {
		return DefaultCheckInterval
	}
	return r.CheckInterval
}
