package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/testenv"
)

// Bounds of the specs.
const (
	settle = 30 * time.Second
	poll   = 50 * time.Millisecond
)

var (
	env *testenv.Env
	// admin prepares and breaks things; operator is the operator's
	// ServiceAccount under the shipped roles, as the Rotator and Source run.
	admin, operator kubernetes.Interface
	// key is the Secret config/rbac lets the operator keep.
	key types.NamespacedName
)

// TestMain installs config/default into a real API server: the Rotator and
// Source run under the shipped Role that names their one Secret.
func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	admin = kubernetes.NewForConfigOrDie(env.Admin)
	operator = kubernetes.NewForConfigOrDie(env.Operator)
	key = types.NamespacedName{Namespace: env.Install.Namespace, Name: "alertbridge-api-tls"}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

var names = []string{"alertbridge-api", "alertbridge-api.alertbridge-system.svc", "127.0.0.1"}

// fresh deletes the Secret so a spec starts from nothing.
func fresh(t *testing.T) {
	t.Helper()
	err := admin.CoreV1().Secrets(key.Namespace).Delete(context.Background(), key.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

func secret(g Gomega) *corev1.Secret {
	s, err := admin.CoreV1().Secrets(key.Namespace).Get(context.Background(), key.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return s
}

func leafOf(g Gomega, pemBytes []byte) *x509.Certificate {
	b, _ := pem.Decode(pemBytes)
	g.Expect(b).NotTo(BeNil())
	c, err := x509.ParseCertificate(b.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	return c
}

// verify checks that the Secret's serving certificate chains to its ca.crt
// for name at 'at'.
func verify(g Gomega, s *corev1.Secret, name string, at time.Time) {
	roots := x509.NewCertPool()
	g.Expect(roots.AppendCertsFromPEM(s.Data[certs.CACertKey])).To(BeTrue())
	_, err := leafOf(g, s.Data[certs.CertKey]).Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: at})
	g.Expect(err).NotTo(HaveOccurred())
}

// TestRotatorCreatesAndRenews: from nothing the Rotator creates a CA and a
// serving certificate for the names; later it renews the certificate with
// the same CA (clients keep trusting it); a Secret someone broke is
// repaired; and it only writes when something is due.
func TestRotatorCreatesAndRenews(t *testing.T) {
	g := NewWithT(t)
	fresh(t)
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Now())
	r := &certs.Rotator{Client: operator, Secret: key, Names: names, Clock: clk}
	wait, err := r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	first := secret(g)
	g.Expect(first.Type).To(Equal(corev1.SecretTypeTLS))
	g.Expect(first.Data).To(HaveKey(certs.CAKeyKey))
	verify(g, first, "alertbridge-api.alertbridge-system.svc", clk.Now())
	verify(g, first, "127.0.0.1", clk.Now())
	leaf := leafOf(g, first.Data[certs.CertKey])
	g.Expect(wait).To(BeNumerically("<=", certs.DefaultCheckInterval))

	// Nothing due: no write.
	_, err = r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(secret(g).ResourceVersion).To(Equal(first.ResourceVersion))

	// Two thirds into the certificate's life: a new one, same CA.
	clk.Step(leaf.NotAfter.Sub(clk.Now()) * 2 / 3)
	_, err = r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	renewed := secret(g)
	g.Expect(renewed.Data[certs.CACertKey]).To(Equal(first.Data[certs.CACertKey]))
	g.Expect(leafOf(g, renewed.Data[certs.CertKey]).SerialNumber).NotTo(Equal(leaf.SerialNumber))
	verify(g, renewed, "alertbridge-api", clk.Now())

	// Broken by hand: repaired.
	broken := renewed.DeepCopy()
	broken.Data[certs.KeyKey] = []byte("garbage")
	_, err = admin.CoreV1().Secrets(key.Namespace).Update(ctx, broken, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	verify(g, secret(g), "alertbridge-api", clk.Now())
	_, err = tls.X509KeyPair(secret(g).Data[certs.CertKey], secret(g).Data[certs.KeyKey])
	g.Expect(err).NotTo(HaveOccurred())
}

// TestRotatorsRace: replicas that race to create and renew the Secret (two
// leaders for a moment) all succeed and leave one valid Secret.
func TestRotatorsRace(t *testing.T) {
	g := NewWithT(t)
	for round := range 3 {
		if round == 0 {
			fresh(t)
		} else {
			// Break the key so every racer wants to renew.
			s := secret(g)
			s.Data[certs.KeyKey] = []byte("garbage")
			_, err := admin.CoreV1().Secrets(key.Namespace).Update(context.Background(), s, metav1.UpdateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = (&certs.Rotator{Client: operator, Secret: key, Names: names}).Ensure(context.Background())
			})
		}
		wg.Wait()
		for _, err := range errs {
			g.Expect(err).NotTo(HaveOccurred(), "round %d", round)
		}
		s := secret(g)
		verify(g, s, "alertbridge-api", time.Now())
		_, err := tls.X509KeyPair(s.Data[certs.CertKey], s.Data[certs.KeyKey])
		g.Expect(err).NotTo(HaveOccurred(), "round %d", round)
	}
}

// TestRotatorLoop: the running Rotator renews on its own timer, and
// recreates the Secret promptly when the Source sees it deleted.
func TestRotatorLoop(t *testing.T) {
	g := NewWithT(t)
	fresh(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clocktesting.NewFakeClock(time.Now())
	src := certs.NewSource(operator, key)
	r := &certs.Rotator{Client: operator, Secret: key, Names: names, Clock: clk, Nudge: src.Changed()}
	done := make(chan error, 2)
	go func() { done <- src.Start(ctx) }()
	go func() { done <- r.Start(ctx) }()
	g.Eventually(ready(src)).WithTimeout(settle).WithPolling(poll).Should(Succeed())
	first := leafOf(g, secret(g).Data[certs.CertKey])

	// The timer: past the renewal time, a new certificate, served.
	g.Eventually(clk.HasWaiters).WithTimeout(settle).WithPolling(poll).Should(BeTrue())
	clk.Step(first.NotAfter.Sub(clk.Now()))
	g.Eventually(func(g Gomega) {
		g.Expect(leafOf(g, secret(g).Data[certs.CertKey]).SerialNumber).NotTo(Equal(first.SerialNumber))
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		c, err := src.GetCertificate(nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.Leaf.SerialNumber).NotTo(Equal(first.SerialNumber))
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())

	// Deleted: back without waiting for the timer (an hour away on a
	// clock that no longer moves).
	before := secret(g)
	fresh(t)
	g.Eventually(func(g Gomega) {
		s := secret(g)
		g.Expect(s.UID).NotTo(Equal(before.UID))
	}).WithTimeout(settle).WithPolling(poll).Should(Succeed())

	cancel()
	for range 2 {
		g.Eventually(done).WithTimeout(settle).Should(Receive(BeNil()))
	}
}

// TestSourceReloads: a Source serves what the Secret holds now, keeps the
// last good certificate when the Secret is broken or deleted, and is not
// ready before it has one.
func TestSourceReloads(t *testing.T) {
	g := NewWithT(t)
	fresh(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := certs.NewSource(operator, key)
	go func() { _ = src.Start(ctx) }()
	g.Consistently(ready(src)).WithTimeout(time.Second).WithPolling(poll).ShouldNot(Succeed())
	_, err := src.GetCertificate(nil)
	g.Expect(err).To(HaveOccurred())

	r := &certs.Rotator{Client: operator, Secret: key, Names: names}
	_, err = r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	serial := func(g Gomega) string {
		c, err := src.GetCertificate(nil)
		g.Expect(err).NotTo(HaveOccurred())
		return c.Leaf.SerialNumber.String()
	}
	want := leafOf(g, secret(g).Data[certs.CertKey]).SerialNumber.String()
	g.Eventually(serial).WithTimeout(settle).WithPolling(poll).Should(Equal(want))
	g.Expect(src.Ready(nil)).To(Succeed())

	// Broken: the last good certificate stays in service. Repaired (as
	// the leader's Rotator does): the new one is served without a restart.
	s := secret(g)
	s.Data[certs.KeyKey] = []byte("garbage")
	_, err = admin.CoreV1().Secrets(key.Namespace).Update(ctx, s, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Consistently(serial).WithTimeout(time.Second).WithPolling(poll).Should(Equal(want), "a broken Secret replaced the good certificate")
	_, err = r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	renewed := leafOf(g, secret(g).Data[certs.CertKey]).SerialNumber.String()
	g.Expect(renewed).NotTo(Equal(want))
	g.Eventually(serial).WithTimeout(settle).WithPolling(poll).Should(Equal(renewed))

	fresh(t)
	g.Consistently(serial).WithTimeout(time.Second).WithPolling(poll).Should(Equal(renewed), "a deleted Secret took the certificate out of service")
}

func ready(src *certs.Source) func() error { return func() error { return src.Ready(nil) } }

// TestRoleNamesOneSecret: the shipped Role lets the operator keep its
// certificate's Secret, and neither change nor list nor watch any other
// Secret in its namespace. (The ClusterRole's get on Secrets, for the
// Secrets SLOPolicies name, is another matter.)
func TestRoleNamesOneSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses", Namespace: key.Namespace}, StringData: map[string]string{"password": "x"}}
	_, err := admin.CoreV1().Secrets(key.Namespace).Create(ctx, other, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	other.StringData = map[string]string{"password": "mine now"}
	_, err = operator.CoreV1().Secrets(key.Namespace).Update(ctx, other, metav1.UpdateOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "update another Secret: %v", err)
	_, err = operator.CoreV1().Secrets(key.Namespace).List(ctx, metav1.ListOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "list every Secret: %v", err)
	_, err = operator.CoreV1().Secrets(key.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + other.Name})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "watch another Secret: %v", err)
	_, err = operator.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: key.Name}}, metav1.CreateOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "create a Secret in another namespace: %v", err)
}
