package controllers_test

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/testenv"
)

// acceptedAlert creates an Alert and makes the controller's first decision
// (New) itself, for specs that run without the operator.
func acceptedAlert(ns, host string) *v1.Alert {
	a := newAlert(ns, host)
	Expect(k8s.Create(ctx, a)).To(Succeed())
	alertstate.MarkCanonical(&a.Status, "fp-"+host, a.CreationTimestamp, a.Generation)
	Expect(k8s.Status().Update(ctx, a)).To(Succeed())
	return a
}

var _ = Describe("Claims without the operator", func() {
	var (
		ns  string
		clk *clocktesting.FakePassiveClock
		c   *claim.Claimer
	)
	BeforeEach(func() {
		ns = newNamespace()
		clk = clocktesting.NewFakePassiveClock(time.Now())
		c = &claim.Claimer{Client: k8s, Clock: clk}
	})

	It("refuses renew, ack and fail from anyone but the holder, naming the holder", func() {
		a := acceptedAlert(ns, "h1")
		got, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "agent-1", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		key := client.ObjectKeyFromObject(a)
		before := &v1.Alert{}
		Expect(k8s.Get(ctx, key, before)).To(Succeed())

		_, errRenew := c.Renew(ctx, key, "agent-2", 0)
		_, errAck := c.Ack(ctx, key, "agent-2", "mine now")
		_, errFail := c.Fail(ctx, key, "agent-2", "boom", time.Minute)
		for _, err := range []error{errRenew, errAck, errFail} {
			var nh *alertstate.NotHolderError
			Expect(errors.As(err, &nh)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring("held by agent-1"))
		}
		after := &v1.Alert{}
		Expect(k8s.Get(ctx, key, after)).To(Succeed())
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "a refused operation wrote")

		clk.SetTime(clk.Now().Add(30 * time.Second))
		renewed, err := c.Renew(ctx, key, "agent-1", 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(alertstate.LeaseExpiry(&renewed.Status)).To(BeTemporally("~", clk.Now().Add(time.Minute), time.Millisecond))
		acked, err := c.Ack(ctx, key, "agent-1", "fixed")
		Expect(err).NotTo(HaveOccurred())
		Expect(acked.Status.Phase).To(Equal(v1.AlertAcked))
		Expect(acked.Status.Ack.By).To(Equal("agent-1"))
	})

	It("takes over a stale Processing Alert on claim, oldest first", func() {
		old := acceptedAlert(ns, "h1")
		_, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "dead-agent", LockTTL: 2 * time.Second})
		Expect(err).NotTo(HaveOccurred())
		clk.SetTime(clk.Now().Add(time.Second)) // creation times have second resolution
		newer := acceptedAlert(ns, "h2")

		_, err = c.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "agent-2", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred(), "the newer New Alert is claimable")
		_, err = c.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "agent-3", LockTTL: time.Minute})
		Expect(err).To(MatchError(claim.ErrNothingToClaim), "a live lease is not claimable")

		clk.SetTime(clk.Now().Add(2 * time.Second))
		got, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent-3", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		Expect(got[0].Name).To(Equal(old.Name))
		Expect(got[0].Status.Phase).To(Equal(v1.AlertProcessing))
		Expect(got[0].Status.Claim.HolderIdentity).To(Equal("agent-3"))
		Expect(got[0].Status.Claim.LeaseTransitions).To(BeEquivalentTo(1))
		Expect(got[0].Status.Attempts).To(BeEquivalentTo(2))
		_, err = c.Ack(ctx, client.ObjectKeyFromObject(old), "dead-agent", "back from the dead")
		Expect(err).To(MatchError(ContainSubstring("held by agent-3")))
		// Acking from the stale claimed object conflicts, re-reads and is refused.
		stale := &v1.Alert{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(old), stale)).To(Succeed())
		stale.ResourceVersion = old.ResourceVersion
		stale.Status.Claim.HolderIdentity = "dead-agent"
		_, err = c.AckClaimed(ctx, stale, "dead-agent", "back from the dead")
		Expect(err).To(MatchError(ContainSubstring("held by agent-3")))
		Expect(newer.Name).NotTo(Equal(old.Name))
	})

	It("claims the oldest Alerts first and only inside the window", func() {
		first := acceptedAlert(ns, "a")
		second := acceptedAlert(ns, "b")
		third := acceptedAlert(ns, "c")
		// Make the ages differ beyond creationTimestamp's resolution.
		for i, a := range []*v1.Alert{first, second, third} {
			updateStatus(a, func(a *v1.Alert) {
				at := metav1.NewTime(clk.Now().Add(-time.Duration(3-i) * time.Hour))
				a.Status.LastSeenAt = &at
			})
		}
		got, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent", Window: 150 * time.Minute})
		Expect(err).NotTo(HaveOccurred())
		names := []string{}
		for _, a := range got {
			names = append(names, a.Name)
		}
		Expect(names).To(ConsistOf(second.Name, third.Name), "the 3h-old Alert is outside a 150m window")
		Expect(got[0].Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(600), "the built-in lock TTL")
	})
})

// loadClusterRole reads one of the shipped role files.
func loadClusterRole(file string) *rbacv1.ClusterRole {
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "rbac", file))
	Expect(err).NotTo(HaveOccurred())
	r := &rbacv1.ClusterRole{}
	Expect(yaml.UnmarshalStrict(data, r)).To(Succeed())
	return r
}

// as returns a client that impersonates user, bound in ns to the shipped
// ClusterRole in file.
func as(ns, user, file string) client.Client {
	role := loadClusterRole(file)
	err := k8s.Create(ctx, role)
	if !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: role.Name + "-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	})).To(Succeed())
	imp := rest.CopyConfig(cfg)
	imp.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(imp, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

var _ = Describe("Shipped RBAC roles", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// A new RoleBinding reaches the authorizer through an informer, so the
	// first allowed call of each spec is retried for a moment.
	forbidden := func(err error) {
		ExpectWithOffset(1, apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden, got %v", err)
	}

	It("lets the monitor create and get Alerts but not list or claim them", func() {
		monitor := as(ns, "monitor@node1", "monitor_role.yaml")
		a := newAlert(ns, "m1")
		Eventually(func() error { return monitor.Create(ctx, a) }, settle, poll).Should(Succeed())
		Expect(monitor.Get(ctx, client.ObjectKeyFromObject(a), &v1.Alert{})).To(Succeed())
		forbidden(monitor.List(ctx, &v1.AlertList{}, client.InNamespace(ns)))

		accepted := acceptedAlert(ns, "m2")
		_, err := (&claim.Claimer{Client: monitor}).Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "monitor", LockTTL: time.Minute})
		forbidden(errors.Unwrap(err))
		_, err = (&claim.Claimer{Client: monitor}).Ack(ctx, client.ObjectKeyFromObject(accepted), "monitor", "")
		forbidden(errors.Unwrap(err))
		forbidden(monitor.Delete(ctx, accepted))
	})

	It("lets the agent claim, renew, ack and fail but not create or delete", func() {
		agent := as(ns, "supervisor", "agent_role.yaml")
		c := &claim.Claimer{Client: agent}
		acceptedAlert(ns, "a1")
		acceptedAlert(ns, "a2")
		var got []v1.Alert
		Eventually(func() (err error) {
			got, err = c.Claim(ctx, claim.Request{Namespace: ns, Limit: 2, Owner: "supervisor", LockTTL: time.Minute})
			return err
		}, settle, poll).Should(Succeed())
		Expect(got).To(HaveLen(2))
		_, err := c.Renew(ctx, client.ObjectKeyFromObject(&got[0]), "supervisor", 0)
		Expect(err).NotTo(HaveOccurred())
		_, err = c.Ack(ctx, client.ObjectKeyFromObject(&got[0]), "supervisor", "done")
		Expect(err).NotTo(HaveOccurred())
		_, err = c.Fail(ctx, client.ObjectKeyFromObject(&got[1]), "supervisor", "timeout", 0)
		Expect(err).NotTo(HaveOccurred(), "reads the policy for the default retryAfter too")

		forbidden(agent.Create(ctx, newAlert(ns, "a3")))
		forbidden(agent.Delete(ctx, &got[0]))
	})

	It("lets the viewer only read", func() {
		viewer := as(ns, "dashboard", "viewer_role.yaml")
		a := acceptedAlert(ns, "v1")
		Eventually(func() error { return viewer.List(ctx, &v1.AlertList{}, client.InNamespace(ns)) }, settle, poll).Should(Succeed())
		Expect(viewer.Get(ctx, client.ObjectKeyFromObject(a), &v1.Alert{})).To(Succeed())
		Expect(viewer.List(ctx, &v1.IncidentList{}, client.InNamespace(ns))).To(Succeed())
		forbidden(viewer.Create(ctx, newAlert(ns, "v2")))
		_, err := (&claim.Claimer{Client: viewer}).Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "dashboard", LockTTL: time.Minute})
		forbidden(errors.Unwrap(err))
		_, err = (&claim.Claimer{Client: viewer}).Ack(ctx, client.ObjectKeyFromObject(a), "dashboard", "")
		forbidden(errors.Unwrap(err))
	})

	It("lets on-call ack an unclaimed Alert by hand but not create Alerts", func() {
		oncall := as(ns, "alice", "oncall_role.yaml")
		a := acceptedAlert(ns, "o1")
		var acked *v1.Alert
		Eventually(func() (err error) {
			acked, err = (&claim.Claimer{Client: oncall}).Ack(ctx, client.ObjectKeyFromObject(a), "alice", "false positive")
			return err
		}, settle, poll).Should(Succeed())
		Expect(acked.Status.Ack.By).To(Equal("alice"))
		forbidden(oncall.Create(ctx, newAlert(ns, "o2")))
	})
})
