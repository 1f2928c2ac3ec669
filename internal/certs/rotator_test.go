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
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// Bounds of the specs.
const (
	settle = 30 * time.Second
	poll   = 50 * time.Millisecond
)

var (
	env *testenv.Env
	// admin prepares and breaks things; operator is the controller
	// manager's ServiceAccount and api the HTTP API's, under the shipped
	// roles, as the Rotator and the Source run.
	admin, operator, api kubernetes.Interface
	// key, caKey and caMap are the objects config/rbac lets the manager
	// keep: the serving Secret, the CA's Secret and the published CA.
	key, caKey, caMap types.NamespacedName
)

// TestMain installs config/default into a real API server: the Rotator and
// Source run under the shipped Roles that name their objects.
func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	admin = kubernetes.NewForConfigOrDie(env.Admin)
	operator = kubernetes.NewForConfigOrDie(env.Operator)
	api = kubernetes.NewForConfigOrDie(env.API)
	ns := env.Install.Namespace
	key = types.NamespacedName{Namespace: ns, Name: "alertbridge-api-tls"}
	caKey = types.NamespacedName{Namespace: ns, Name: "alertbridge-api-ca"}
	caMap = types.NamespacedName{Namespace: ns, Name: "alertbridge-api-ca"}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

var names = []string{"alertbridge-api", "alertbridge-api.alertbridge-system.svc", "127.0.0.1"}

// rotator is the leader's Rotator as `alertbridge run` makes it.
func rotator(clk *clocktesting.FakeClock) *certs.Rotator {
	r := &certs.Rotator{Client: operator, Secret: key, CASecret: caKey, CAConfigMap: caMap, Names: names, Manage: true}
	if clk != nil {
		r.Clock = clk
	}
	return r
}

// fresh deletes the objects so a spec starts from nothing.
func fresh(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, n := range []string{key.Name, caKey.Name} {
		if err := admin.CoreV1().Secrets(key.Namespace).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	if err := admin.CoreV1().ConfigMaps(caMap.Namespace).Delete(ctx, caMap.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

func secret(g Gomega) *corev1.Secret { return secretNamed(g, key) }

func secretNamed(g Gomega, k types.NamespacedName) *corev1.Secret {
	s, err := admin.CoreV1().Secrets(k.Namespace).Get(context.Background(), k.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return s
}

// published is the CA certificate of the ConfigMap, as any authenticated
// user reads it.
func published(g Gomega) string {
	reader, err := kubernetes.NewForConfig(env.As("someone@example.com"))
	g.Expect(err).NotTo(HaveOccurred())
	cm, err := reader.CoreV1().ConfigMaps(caMap.Namespace).Get(context.Background(), caMap.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cm.Data).To(HaveLen(1), "the ConfigMap holds ca.crt and nothing else")
	return cm.Data[certs.CACertKey]
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

// TestRotatorCreatesAndRenews: from nothing the Rotator creates a CA in its
// own Secret, a serving certificate for the names in the serving Secret
// (without the CA's key) and the CA certificate in the ConfigMap; later it
// renews the certificate with the same CA (clients keep trusting it); a
// Secret someone broke is repaired; and it only writes when something is
// due.
func TestRotatorCreatesAndRenews(t *testing.T) {
	g := NewWithT(t)
	fresh(t)
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Now())
	r := rotator(clk)
	wait, err := r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	first := secret(g)
	g.Expect(first.Type).To(Equal(corev1.SecretTypeTLS))
	g.Expect(first.Data).To(HaveKey(certs.CACertKey))
	g.Expect(first.Data).NotTo(HaveKey(certs.CAKeyKey), "the serving Secret, which the HTTP API reads, holds no CA key")
	ca := secretNamed(g, caKey)
	g.Expect(ca.Data).To(HaveKey(certs.CAKeyKey))
	g.Expect(ca.Data[certs.CACertKey]).To(Equal(first.Data[certs.CACertKey]))
	g.Expect(published(g)).To(Equal(string(first.Data[certs.CACertKey])))
	verify(g, first, "alertbridge-api.alertbridge-system.svc", clk.Now())
	verify(g, first, "127.0.0.1", clk.Now())
	leaf := leafOf(g, first.Data[certs.CertKey])
	g.Expect(wait).To(BeNumerically("<=", certs.DefaultCheckInterval))

	// Nothing due: no write.
	_, err = r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(secret(g).ResourceVersion).To(Equal(first.ResourceVersion))
	g.Expect(secretNamed(g, caKey).ResourceVersion).To(Equal(ca.ResourceVersion))

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

// TestRotatorAdoptsTheCAOfAnOlderSecret: an install from before the CA had
// a Secret of its own keeps ca.key in the serving Secret. The Rotator moves
// that CA into its own Secret (clients keep trusting it), removes the key
// from the serving Secret and publishes the CA certificate.
func TestRotatorAdoptsTheCAOfAnOlderSecret(t *testing.T) {
	g := NewWithT(t)
	fresh(t)
	ctx := context.Background()
	g.Expect(rotator(nil).Ensure(ctx)).Error().NotTo(HaveOccurred())
	ca, serving := secretNamed(g, caKey), secret(g)
	old := serving.DeepCopy()
	old.Data[certs.CAKeyKey] = ca.Data[certs.CAKeyKey]
	_, err := admin.CoreV1().Secrets(key.Namespace).Update(ctx, old, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(admin.CoreV1().Secrets(caKey.Namespace).Delete(ctx, caKey.Name, metav1.DeleteOptions{})).To(Succeed())
	g.Expect(admin.CoreV1().ConfigMaps(caMap.Namespace).Delete(ctx, caMap.Name, metav1.DeleteOptions{})).To(Succeed())

	_, err = rotator(nil).Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(secretNamed(g, caKey).Data[certs.CACertKey]).To(Equal(ca.Data[certs.CACertKey]), "the CA clients trust is kept")
	now := secret(g)
	g.Expect(now.Data).NotTo(HaveKey(certs.CAKeyKey))
	g.Expect(now.Data[certs.CertKey]).To(Equal(serving.Data[certs.CertKey]), "a good certificate is kept")
	g.Expect(published(g)).To(Equal(string(ca.Data[certs.CACertKey])))
}

// TestRotatorPublishesASecretItDoesNotKeep: with another tool keeping the
// serving Secret (cert-manager), the Rotator never writes it and publishes
// its ca.crt.
func TestRotatorPublishesASecretItDoesNotKeep(t *testing.T) {
	g := NewWithT(t)
	fresh(t)
	ctx := context.Background()
	r := &certs.Rotator{Client: operator, Secret: key, CASecret: caKey, CAConfigMap: caMap, Names: names}
	_, err := r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred(), "nothing to publish yet is not an error")
	_, err = admin.CoreV1().ConfigMaps(caMap.Namespace).Get(ctx, caMap.Name, metav1.GetOptions{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
	// What cert-manager writes (here, made by a managing Rotator as admin).
	g.Expect((&certs.Rotator{Client: admin, Secret: key, CASecret: caKey, CAConfigMap: caMap, Names: names, Manage: true}).Ensure(ctx)).
		Error().NotTo(HaveOccurred())
	issued := secret(g)
	_, err = r.Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(secret(g).ResourceVersion).To(Equal(issued.ResourceVersion))
	g.Expect(published(g)).To(Equal(string(issued.Data[certs.CACertKey])))
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
				_, errs[i] = rotator(nil).Ensure(context.Background())
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
	src := certs.NewSource(api, key)
	r := rotator(clk)
	r.Nudge = src.Changed()
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
	src := certs.NewSource(api, key)
	go func() { _ = src.Start(ctx) }()
	g.Consistently(ready(src)).WithTimeout(time.Second).WithPolling(poll).ShouldNot(Succeed())
	_, err := src.GetCertificate(nil)
	g.Expect(err).To(HaveOccurred())

	r := rotator(nil)
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

// TestRolesNameTheirObjects: the HTTP API may read the serving Secret and
// no other Secret (not the CA's: it cannot mint certificates); the manager
// may keep its certificate's objects and change no other Secret, nor list
// or watch them; anyone signed in may read the published CA certificate
// and no Secret.
func TestRolesNameTheirObjects(t *testing.T) {
	g := NewWithT(t)
	fresh(t)
	ctx := context.Background()
	_, err := rotator(nil).Ensure(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	ns := key.Namespace
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses", Namespace: ns}, StringData: map[string]string{"password": "x"}}
	_, err = admin.CoreV1().Secrets(ns).Create(ctx, other, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	forbidden := func(err error, what string) {
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", what, err)
	}

	_, err = api.CoreV1().Secrets(ns).Get(ctx, key.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "the API serves the serving Secret")
	_, err = api.CoreV1().Secrets(ns).Get(ctx, caKey.Name, metav1.GetOptions{})
	forbidden(err, "the API reads the CA's key")
	_, err = api.CoreV1().Secrets(ns).Get(ctx, other.Name, metav1.GetOptions{})
	forbidden(err, "the API reads another Secret")
	_, err = api.CoreV1().Secrets(ns).Update(ctx, secret(g), metav1.UpdateOptions{})
	forbidden(err, "the API changes the serving Secret")

	other.StringData = map[string]string{"password": "mine now"}
	_, err = operator.CoreV1().Secrets(ns).Update(ctx, other, metav1.UpdateOptions{})
	forbidden(err, "the manager updates another Secret")
	_, err = operator.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	forbidden(err, "the manager lists every Secret")
	_, err = operator.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + other.Name})
	forbidden(err, "the manager watches another Secret")
	_, err = operator.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: key.Name}}, metav1.CreateOptions{})
	forbidden(err, "the manager creates a Secret in another namespace")

	someone, err := kubernetes.NewForConfig(env.As("someone@example.com"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(published(g)).NotTo(BeEmpty())
	for _, n := range []string{key.Name, caKey.Name} {
		_, err = someone.CoreV1().Secrets(ns).Get(ctx, n, metav1.GetOptions{})
		forbidden(err, "anyone reads Secret "+n)
	}
}
