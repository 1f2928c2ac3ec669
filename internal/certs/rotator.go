package certs

import (
	"context"
	"fmt"
	"maps"
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
	// Secret, so a change the watch missed is still repaired.
	DefaultCheckInterval = time.Hour
	// retryInterval is the wait after a failed attempt.
	retryInterval = 10 * time.Second
)

// Rotator creates the Secret's CA and serving certificate and renews them
// before they expire. It is a manager.Runnable that runs on the leader
// only; it reads and writes the Secret directly (no cache), under a Role
// that names that one Secret.
type Rotator struct {
	Client kubernetes.Interface
	Secret types.NamespacedName
	// Names are the DNS names and IP addresses the serving certificate is
	// for; the first is its common name.
	Names []string
	// CAValidity and CertValidity default to DefaultCAValidity and
	// DefaultCertValidity.
	CAValidity, CertValidity time.Duration
	// CheckInterval defaults to DefaultCheckInterval.
	CheckInterval time.Duration
	// Nudge wakes the Rotator early: the Source signals every change of
	// the Secret (including its deletion).
	Nudge <-chan struct{}
	// Clock is injected so tests control time; nil means the real clock.
	Clock clock.WithTicker
}

// NeedLeaderElection is true: one writer renews; every replica serves.
func (*Rotator) NeedLeaderElection() bool { return true }

// Start keeps the Secret valid until ctx ends.
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

// Ensure makes the Secret hold a valid CA and serving certificate, creating
// it if needed, and returns how long until it next needs a look. A write
// that races another replica's (a conflict) is retried from a fresh read.
func (r *Rotator) Ensure(ctx context.Context) (time.Duration, error) {
	var next time.Time
	secrets := r.Client.CoreV1().Secrets(r.Secret.Namespace)
	err := retry.OnError(retry.DefaultRetry, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		now := r.clock().Now()
		s, err := secrets.Get(ctx, r.Secret.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			data, err := r.issue(nil, plan{ca: true, cert: true}, now)
			if err != nil {
				return err
			}
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name: r.Secret.Name, Namespace: r.Secret.Namespace,
					Labels: map[string]string{"app.kubernetes.io/name": "alertbridge", "app.kubernetes.io/component": "api-tls"},
				},
				Type: corev1.SecretTypeTLS,
				Data: data,
			}
			if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
				return err
			}
			ctrl.LoggerFrom(ctx).Info("Created the HTTP API's CA and serving certificate", "names", r.Names)
			next = nextRenewal(data)
			return nil
		case err != nil:
			return err
		}
		p := planFor(s.Data, r.Names, now)
		if !p.ca && !p.cert {
			next = nextRenewal(s.Data)
			return nil
		}
		data, err := r.issue(s.Data, p, now)
		if err != nil {
			return err
		}
		s = s.DeepCopy()
		s.Data = data
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return err
		}
		ctrl.LoggerFrom(ctx).Info("Renewed the HTTP API's serving certificate", "reason", p.reason, "newCA", p.ca, "names", r.Names)
		next = nextRenewal(data)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("failed to keep Secret %s valid: %w", r.Secret, err)
	}
	wait := r.checkInterval()
	if d := next.Sub(r.clock().Now()); d < wait {
		wait = max(d, 0)
	}
	return wait, nil
}

// issue returns old's data with what p says issued anew at now.
func (r *Rotator) issue(old map[string][]byte, p plan, now time.Time) (map[string][]byte, error) {
	data := maps.Clone(old)
	if data == nil {
		data = map[string][]byte{}
	}
	var ca *keyPair
	var err error
	if p.ca {
		if ca, err = newCA(r.Secret.Name, now, r.caValidity()); err != nil {
			return nil, err
		}
		data[CACertKey], data[CAKeyKey] = ca.certPEM, ca.keyPEM
	} else if ca, err = parsePair(data[CACertKey], data[CAKeyKey]); err != nil {
		return nil, fmt.Errorf("failed to read the CA: %w", err)
	}
	leaf, err := newServing(ca, r.Names, now, r.certValidity())
	if err != nil {
		return nil, err
	}
	data[CertKey], data[KeyKey] = leaf.certPEM, leaf.keyPEM
	return data, nil
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
