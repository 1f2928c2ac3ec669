package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Source serves the certificate kept in one Secret. It watches that Secret
// (a list and watch narrowed to its name, which a Role with resourceNames
// allows) and swaps the certificate in memory on every change; until the
// first one arrives, handshakes fail and Ready says why. A Secret that
// cannot be read as a certificate, or its deletion, leaves the last good
// certificate in service. It is a manager.Runnable on every HTTP API
// replica.
type Source struct {
	client  kubernetes.Interface
	secret  types.NamespacedName
	current atomic.Pointer[served]
	// previous is the certificate served before current: a replica that
	// has not seen a rotation yet still presents it to its peers.
	previous atomic.Pointer[served]
	changed  chan struct{}
}

// served is the certificate in service and the PEM it was read from.
type served struct {
	cert            *tls.Certificate
	certPEM, keyPEM []byte
}

// NewSource returns a Source for the Secret key.
func NewSource(c kubernetes.Interface, key types.NamespacedName) *Source {
	return &Source{client: c, secret: key, changed: make(chan struct{}, 1)}
}

// NeedLeaderElection is false: every replica serves.
func (*Source) NeedLeaderElection() bool { return false }

// Changed receives a value after each change of the Secret (coalesced).
func (s *Source) Changed() <-chan struct{} { return s.changed }

// Start watches the Secret until ctx ends.
func (s *Source) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("certs").WithValues("secret", klog.KRef(s.secret.Namespace, s.secret.Name))
	factory, informer := namedInformer(s.client, s.secret, secrets)
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.load(log, obj) },
		UpdateFunc: func(_, obj any) { s.load(log, obj) },
		DeleteFunc: func(any) {
			log.Info("The serving certificate's Secret was deleted; serving the last certificate until it is back")
			s.nudge()
		},
	}); err != nil {
		return fmt.Errorf("failed to watch Secret %s: %w", s.secret, err)
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

func (s *Source) load(log logr.Logger, obj any) {
	defer s.nudge()
	sec, ok := obj.(*corev1.Secret)
	if !ok || sec.Name != s.secret.Name {
		return
	}
	certPEM, keyPEM := sec.Data[CertKey], sec.Data[KeyKey]
	if cur := s.current.Load(); cur != nil && bytes.Equal(cur.certPEM, certPEM) && bytes.Equal(cur.keyPEM, keyPEM) {
		return
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The Rotator repairs it (or whoever keeps the Secret); until then
		// the last good certificate stays in service.
		log.Error(err, "The Secret holds no usable certificate; keeping the last one", "resourceVersion", sec.ResourceVersion)
		return
	}
	if old := s.current.Swap(&served{cert: &pair, certPEM: certPEM, keyPEM: keyPEM}); old != nil {
		s.previous.Store(old)
	}
	log.Info("Serving a new certificate", "resourceVersion", sec.ResourceVersion,
		"notAfter", pair.Leaf.NotAfter, "serial", pair.Leaf.SerialNumber.Text(16))
}

func (s *Source) nudge() { nudge(s.changed) }

// GetCertificate is tls.Config's: the Secret's current certificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cur := s.current.Load()
	if cur == nil {
		return nil, errNoCertificate
	}
	return cur.cert, nil
}

var errNoCertificate = errors.New("no serving certificate yet")

// GetClientCertificate is tls.Config's: the replica presents the serving
// certificate to its peers.
func (s *Source) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.GetCertificate(nil)
}

// Holds reports whether leaf (DER) is the certificate this Source serves,
// or served before the last rotation. Only the HTTP API's replicas can read
// the Secret's private key, so a peer that completes a handshake with that
// certificate is one of them.
func (s *Source) Holds(leaf []byte) bool {
	for _, p := range []*served{s.current.Load(), s.previous.Load()} {
		if p != nil && len(p.cert.Certificate) > 0 && bytes.Equal(p.cert.Certificate[0], leaf) {
			return true
		}
	}
	return false
}

// Ready is a healthz.Checker: ready once a certificate is loaded.
func (s *Source) Ready(*http.Request) error {
	if s.current.Load() == nil {
		return fmt.Errorf("%w from Secret %s", errNoCertificate, s.secret)
	}
	return nil
}

// Options say where the HTTP API's certificate and its CA live and who
// keeps them.
type Options struct {
	// Secret is the serving Secret (tls.crt, tls.key, ca.crt).
	Secret types.NamespacedName
	// CASecret holds the CA's certificate and key when Manage is set.
	CASecret types.NamespacedName
	// CAConfigMap receives the CA certificate (ca.crt) for clients.
	CAConfigMap types.NamespacedName
	// Names are the serving certificate's DNS names and IP addresses.
	Names []string
	// Manage makes the leader create and renew a self-signed CA and the
	// serving certificate; without it the serving Secret is kept by
	// another tool (cert-manager), and only its ca.crt is published.
	Manage bool
}

// AddIssuer adds to mgr (the controller manager) a Rotator for o, which
// runs on the leader, and the watches that wake it when one of its objects
// changes or goes.
func AddIssuer(mgr manager.Manager, c kubernetes.Interface, o Options) error {
	nudge := make(chan struct{}, 1)
	watches := []manager.Runnable{
		newWatch(c, o.Secret, secrets, nudge),
		newWatch(c, o.CAConfigMap, configMaps, nudge),
	}
	if o.Manage {
		watches = append(watches, newWatch(c, o.CASecret, secrets, nudge))
	}
	for _, w := range watches {
		if err := mgr.Add(w); err != nil {
			return fmt.Errorf("failed to add a watch of the HTTP API's certificate: %w", err)
		}
	}
	r := &Rotator{Client: c, Secret: o.Secret, CASecret: o.CASecret, CAConfigMap: o.CAConfigMap, Names: o.Names, Manage: o.Manage, Nudge: nudge}
	if err := mgr.Add(r); err != nil {
		return fmt.Errorf("failed to add the serving certificate's Rotator: %w", err)
	}
	return nil
}

// AddSource adds to mgr (an HTTP API replica) a Source serving the
// certificate of the Secret key, and returns it.
func AddSource(mgr manager.Manager, c kubernetes.Interface, key types.NamespacedName) (*Source, error) {
	src := NewSource(c, key)
	if err := mgr.Add(src); err != nil {
		return nil, fmt.Errorf("failed to add the serving certificate's Source: %w", err)
	}
	return src, nil
}
