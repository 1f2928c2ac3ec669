package v1alpha1_test

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// These specs write status the way kubectl does (raw patches, no client-side
// checks) as users bound to the shipped roles, against the admission
// policies config/default installs: the API server alone must refuse.
var _ = Describe("Who may write an Alert's status (alertbridge-alert-status)", func() {
	var (
		ns                     string
		operator               client.Client
		agent1, agent2, oncall client.Client
		a                      *v1.Alert
	)
	const (
		agent1User = "system:serviceaccount:ops:supervisor"
		agent2User = "system:serviceaccount:ops:cto"
		oncallUser = "alice@example.com"
	)

	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "api-")
		var err error
		operator, err = client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		agent1 = userIn(ns, agent1User, "alertbridge-agent")
		agent2 = userIn(ns, agent2User, "alertbridge-agent")
		oncall = userIn(ns, oncallUser, "alertbridge-oncall")

		// The operator decides the Alert (there is no operator running in
		// this suite, so the spec writes its decision as the operator).
		a = testbuild.MakeAlert("", ns).Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		orig := a.DeepCopy()
		alertstate.MarkCanonical(&a.Status, "fp", a.CreationTimestamp, a.Generation)
		Expect(operator.Status().Patch(ctx, a, client.MergeFrom(orig))).To(Succeed())
	})

	claimAs := func(c client.Client, owner, user string) {
		GinkgoHelper()
		Eventually(func() error {
			var cur v1.Alert
			if err := c.Get(ctx, keyOf(a), &cur); err != nil {
				return err
			}
			orig := cur.DeepCopy()
			Expect(alertstate.Claim(&cur.Status, alertstate.Caller{Owner: owner, User: user}, time.Hour, time.Now())).To(Succeed())
			return c.Status().Patch(ctx, &cur, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		}, "30s", "100ms").Should(Succeed(), "RBAC bindings take a moment to reach the authorizer")
	}

	patch := func(c client.Client, status map[string]any) error {
		body, err := json.Marshal(map[string]any{"status": status})
		Expect(err).NotTo(HaveOccurred())
		return c.Status().Patch(ctx, a.DeepCopy(), client.RawPatch("application/merge-patch+json", body))
	}

	It("lets an agent claim only in its own name", func() {
		Eventually(func() error {
			at := now()
			return patch(agent1, map[string]any{"phase": "Processing", "attempts": 1, "claim": map[string]any{
				"holderIdentity": "supervisor", "holderUser": agent2User, "acquireTime": at, "renewTime": at, "leaseDurationSeconds": 600,
			}})
		}, "30s", "100ms").Should(MatchError(ContainSubstring("status.claim.holderUser must name you (" + agent1User + ")")))
		claimAs(agent1, "supervisor", agent1User)
	})

	Context("while an agent holds the Alert", func() {
		BeforeEach(func() { claimAs(agent1, "triage-supervisor", agent1User) })

		DescribeTable("refuses everyone else, naming the holder, the owner and the lease end",
			func(verb string, status func() map[string]any) {
				err := patch(agent2, status())
				Expect(err).To(MatchError(MatchRegexp(
					`status\.claim: Alert %s is held by %s \(owner triage-supervisor\) until \S+Z; only the holder may %s it`,
					a.Name, agent1User, verb)))
				var stored v1.Alert
				Expect(k8s.Get(ctx, keyOf(a), &stored)).To(Succeed())
				Expect(stored.Status.Phase).To(Equal(v1.AlertProcessing))
				Expect(stored.Status.Claim.HolderUser).To(Equal(agent1User))
			},
			Entry("ack", "ack", func() map[string]any {
				return map[string]any{"phase": "Acked", "ack": map[string]any{"by": agent2User, "at": now()}}
			}),
			Entry("fail", "fail", func() map[string]any {
				return map[string]any{"phase": "Failed", "lastError": "x", "retryAfter": now()}
			}),
			Entry("renew", "renew", func() map[string]any {
				return map[string]any{"claim": map[string]any{"renewTime": now()}}
			}),
			Entry("steal the claim", "renew", func() map[string]any {
				return map[string]any{"claim": map[string]any{"holderIdentity": "cto", "holderUser": agent2User}}
			}),
		)

		It("refuses the holder a forged ack.by, and takes its own ack", func() {
			Expect(patch(agent1, map[string]any{"phase": "Acked", "ack": map[string]any{"by": "someone-else", "at": now()}})).
				To(MatchError(ContainSubstring("status.ack.by must name you (" + agent1User + ")")))
			Expect(patch(agent1, map[string]any{"phase": "Acked", "ack": map[string]any{"by": agent1User, "at": now(), "note": "fixed"}})).To(Succeed())
		})

		It("lets the holder renew and fail, but not return the Alert to New", func() {
			Expect(patch(agent1, map[string]any{"claim": map[string]any{"renewTime": now(), "leaseDurationSeconds": 60}})).To(Succeed())
			Expect(patch(agent1, map[string]any{"claim": map[string]any{"renewTime": time.Now().UTC().Format(time.RFC3339Nano)}})).
				To(MatchError(ContainSubstring("status.claim.renewTime")), "a time no Kubernetes client could read back is refused")
			Expect(patch(agent1, map[string]any{"claim": map[string]any{"acquireTime": now()}})).
				To(MatchError(ContainSubstring("a renewal moves only renewTime and leaseDurationSeconds")))
			Expect(patch(agent1, map[string]any{"phase": "New"})).
				To(MatchError(ContainSubstring("only the alertbridge operator returns Alert " + a.Name + " to New (when its lease expires")))
			Expect(patch(agent1, map[string]any{"phase": "Failed", "lastError": "gateway timeout", "retryAfter": now()})).To(Succeed())
			Expect(patch(agent1, map[string]any{"phase": "New"})).
				To(MatchError(ContainSubstring("when its retryAfter passes")))
		})
	})

	DescribeTable("refuses an agent the fields the operator owns",
		func(status map[string]any, field string) {
			Eventually(func() error { return patch(agent1, status) }, "30s", "100ms").
				Should(MatchError(ContainSubstring(field + ": only the alertbridge operator writes this")))
		},
		Entry("occurrences", map[string]any{"occurrences": 1000}, "status.occurrences"),
		Entry("pendingFolds", map[string]any{"pendingFolds": []string{"uid"}}, "status.pendingFolds"),
		Entry("ingestKeys", map[string]any{"ingestKeys": []string{"k"}}, "status.ingestKeys"),
		Entry("fingerprint", map[string]any{"fingerprint": "other"}, "status.fingerprint"),
		Entry("lastSeenAt", map[string]any{"lastSeenAt": now()}, "status.lastSeenAt"),
		Entry("resolvedAt", map[string]any{"resolvedAt": now()}, "status.resolvedAt"),
		Entry("firing", map[string]any{"firing": map[string]any{"resolved": 1}}, "status.firing"),
	)

	It("refuses an agent Deduplicated, which only the operator decides", func() {
		Eventually(func() error {
			return patch(agent1, map[string]any{"phase": "Deduplicated", "duplicateOf": "x"})
		}, "30s", "100ms").Should(MatchError(Or(
			ContainSubstring("only the alertbridge operator folds an Alert"),
			ContainSubstring("status.duplicateOf: only the alertbridge operator writes this"))))
	})

	It("lets on-call ack an unclaimed Alert by hand, in their own name, and not an agent", func() {
		Eventually(func() error {
			return patch(agent1, map[string]any{"phase": "Acked", "ack": map[string]any{"by": agent1User, "at": now()}})
		}, "30s", "100ms").Should(MatchError(ContainSubstring("needs the acknowledge verb on alerts/status")))
		Eventually(func() error {
			return patch(oncall, map[string]any{"phase": "Acked", "ack": map[string]any{"by": "bob", "at": now()}})
		}, "30s", "100ms").Should(MatchError(ContainSubstring("status.ack.by must name you (" + oncallUser + ")")))
		Expect(patch(oncall, map[string]any{"phase": "Acked", "ack": map[string]any{"by": oncallUser, "at": now(), "note": "false positive"}})).To(Succeed())
	})

	Context("requeue: on-call frees stuck work", func() {
		requeued := func(by, reason string) map[string]any {
			return map[string]any{"by": by, "reason": reason, "at": now()}
		}
		stored := func() *v1.Alert {
			GinkgoHelper()
			var cur v1.Alert
			Expect(k8s.Get(ctx, keyOf(a), &cur)).To(Succeed())
			return &cur
		}

		It("lets on-call requeue a Processing Alert someone else holds, in their own name, with the claim cleared", func() {
			claimAs(agent1, "triage-supervisor", agent1User)
			Eventually(func() error {
				var cur v1.Alert
				if err := oncall.Get(ctx, keyOf(a), &cur); err != nil {
					return err
				}
				orig := cur.DeepCopy()
				Expect(alertstate.RequeueBy(&cur.Status, alertstate.Caller{User: oncallUser}, "worker hung", time.Now())).To(Succeed())
				return oncall.Status().Patch(ctx, &cur, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
			}, "30s", "100ms").Should(Succeed())
			got := stored()
			Expect(got.Status.Phase).To(Equal(v1.AlertNew))
			Expect(got.Status.Claim).To(BeNil())
			Expect(got.Status.Attempts).To(BeEquivalentTo(1), "attempts counts claims; a requeue keeps it")
			Expect(got.Status.Requeued).NotTo(BeNil())
			Expect(got.Status.Requeued.By).To(Equal(oncallUser))
			Expect(got.Status.Requeued.Reason).To(Equal("worker hung"))
			claimAs(agent2, "cto", agent2User)
			Expect(stored().Status.Claim.HolderUser).To(Equal(agent2User), "a requeued Alert is claimable again")
		})

		It("lets on-call requeue a Failed Alert to retry now", func() {
			claimAs(agent1, "triage-supervisor", agent1User)
			Expect(patch(agent1, map[string]any{"phase": "Failed", "lastError": "timeout", "retryAfter": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})).To(Succeed())
			Eventually(func() error {
				return patch(oncall, map[string]any{"phase": "New", "claim": nil, "requeued": requeued(oncallUser, "retry now")})
			}, "30s", "100ms").Should(Succeed())
			got := stored()
			Expect(got.Status.Phase).To(Equal(v1.AlertNew))
			Expect(got.Status.Requeued.By).To(Equal(oncallUser))
		})

		It("refuses an agent, even the holder, naming the verb", func() {
			claimAs(agent1, "triage-supervisor", agent1User)
			for _, c := range []client.Client{agent1, agent2} {
				user := map[client.Client]string{agent1: agent1User, agent2: agent2User}[c]
				Expect(patch(c, map[string]any{"phase": "New", "claim": nil, "requeued": requeued(user, "stuck")})).
					To(MatchError(ContainSubstring("needs the requeue verb on alerts/status")))
			}
			Expect(patch(agent1, map[string]any{"phase": "New", "claim": nil})).
				To(MatchError(ContainSubstring("or a user with the requeue verb on alerts/status")))
			Expect(stored().Status.Phase).To(Equal(v1.AlertProcessing))
		})

		It("refuses a requeue in someone else's name, without a reason, keeping the claim, or changing more", func() {
			claimAs(agent1, "triage-supervisor", agent1User)
			Eventually(func() error {
				return patch(oncall, map[string]any{"phase": "New", "claim": nil, "requeued": requeued(agent2User, "stuck")})
			}, "30s", "100ms").Should(MatchError(ContainSubstring("status.requeued.by must name you (" + oncallUser + ")")))
			Expect(patch(oncall, map[string]any{"phase": "New", "claim": nil, "requeued": requeued(oncallUser, "  ")})).
				To(MatchError(ContainSubstring("status.requeued.reason must say why")))
			Expect(patch(oncall, map[string]any{"phase": "New", "requeued": requeued(oncallUser, "stuck")})).
				To(MatchError(ContainSubstring("it clears the claim")))
			Expect(patch(oncall, map[string]any{"phase": "New", "claim": nil, "attempts": 0, "requeued": requeued(oncallUser, "stuck")})).
				To(MatchError(ContainSubstring("status.attempts counts claims")))
			Expect(patch(oncall, map[string]any{"requeued": requeued(oncallUser, "stuck")})).
				To(MatchError(ContainSubstring("status.requeued is written only when")))
			Expect(stored().Status.Phase).To(Equal(v1.AlertProcessing))
		})
	})

	It("lets only who may patch incidents/status link an Incident", func() {
		ref := map[string]any{"incidentRef": map[string]any{"name": "inc-1"}}
		Eventually(func() error { return patch(agent1, ref) }, "30s", "100ms").
			Should(MatchError(ContainSubstring("status.incidentRef: linking Alert " + a.Name + " to an Incident needs patch on incidents/status")))
		Eventually(func() error { return patch(oncall, ref) }, "30s", "100ms").Should(Succeed())
	})

	It("lets the operator write what it owns", func() {
		var cur v1.Alert
		Expect(operator.Get(ctx, keyOf(a), &cur)).To(Succeed())
		orig := cur.DeepCopy()
		cur.Status.Occurrences = 7
		cur.Status.PendingFolds = []string{"uid-1"}
		alertstate.Fired(&cur.Status, "instance")
		Expect(operator.Status().Patch(ctx, &cur, client.MergeFrom(orig))).To(Succeed())
		claimAs(agent1, "supervisor", agent1User)
		Expect(operator.Get(ctx, keyOf(a), &cur)).To(Succeed())
		orig = cur.DeepCopy()
		Expect(alertstate.Requeue(&cur.Status, cur.Generation, time.Now().Add(2*time.Hour))).To(Equal(v1.ReasonLeaseExpired))
		Expect(operator.Status().Patch(ctx, &cur, client.MergeFrom(orig))).To(Succeed(), "the operator returns an expired lease to New")
	})

	// The usual grant to an app team's admin: every verb on every
	// alertbridge resource of the namespace, virtual verbs included. It is
	// not the operator's identity: the policies know the operator by name.
	Context("as a namespace admin holding every verb on ops.alertbridge.io", func() {
		var admin client.Client
		const adminUser = "app-admin@example.com"

		BeforeEach(func() {
			admin = appAdmin(ns, adminUser)
			claimAs(agent1, "triage-supervisor", agent1User)
		})

		It("takes over no lease, acks in nobody else's name and writes nothing the operator owns", func() {
			Eventually(func() error {
				return patch(admin, map[string]any{"claim": map[string]any{"holderIdentity": "admin", "holderUser": adminUser}})
			}, "30s", "100ms").Should(MatchError(ContainSubstring("is held by " + agent1User)))
			Expect(patch(admin, map[string]any{"phase": "Acked", "ack": map[string]any{"by": agent1User, "at": now()}})).
				To(MatchError(ContainSubstring("only the holder may ack it")))
			Expect(patch(admin, map[string]any{"occurrences": 999})).
				To(MatchError(ContainSubstring("status.occurrences: only the alertbridge operator writes this")))
			var stored v1.Alert
			Expect(k8s.Get(ctx, keyOf(a), &stored)).To(Succeed())
			Expect(stored.Status.Claim.HolderUser).To(Equal(agent1User))
			Expect(stored.Status.Phase).To(Equal(v1.AlertProcessing))
			Expect(stored.Status.Occurrences).NotTo(BeEquivalentTo(999))
		})

		It("plants no intake key and no operator origin", func() {
			planted := testbuild.MakeAlert("", ns).Annotation(v1.IngestKeyAnnotation, "someone-elses-key").Obj()
			Eventually(func() error { return admin.Create(ctx, planted) }, "30s", "100ms").
				Should(MatchError(ContainSubstring("metadata.annotations[ops.alertbridge.io/ingest-key]: set only by the alertbridge operator")))
			origin := testbuild.MakeAlert("", ns).MetaLabel(v1.OriginLabel, v1.OriginOperator).Obj()
			Expect(admin.Create(ctx, origin)).To(MatchError(ContainSubstring(
				"metadata.labels[ops.alertbridge.io/origin]: \"operator\" marks the Alerts the alertbridge operator raises on its own account")))
			Expect(operator.Create(ctx, origin)).To(Succeed())
			Expect(admin.Patch(ctx, origin, client.RawPatch("application/merge-patch+json",
				[]byte(`{"metadata":{"labels":{"ops.alertbridge.io/origin":null}}}`)))).To(MatchError(ContainSubstring("may neither set nor remove it")))
		})
	})

	It("keeps the intake's annotations to the operator", func() {
		monitor := userIn(ns, "system:serviceaccount:monitoring:node1", "alertbridge-monitor")
		planted := testbuild.MakeAlert("", ns).Annotation(v1.IngestKeyAnnotation, "someone-elses-key").Obj()
		Eventually(func() error { return monitor.Create(ctx, planted.DeepCopy()) }, "30s", "100ms").
			Should(MatchError(ContainSubstring("metadata.annotations[ops.alertbridge.io/ingest-key]: set only by the alertbridge operator")))
		Expect(monitor.Create(ctx, testbuild.MakeAlert("", ns).Obj())).To(Succeed(), "a plain Alert is the monitor's to create")
		Expect(operator.Create(ctx, planted)).To(Succeed())
	})
})

// now is the current time as Kubernetes clients write a MicroTime.
func now() string { return metav1.NowMicro().UTC().Format(metav1.RFC3339Micro) }

// userIn is a client acting as user, bound in ns to the shipped ClusterRole.
func userIn(ns, user, clusterRole string) client.Client {
	GinkgoHelper()
	c, err := env.UserIn(ctx, ns, clusterRole, user)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// appAdmin gives user (and any further subjects) the usual grant of an app
// team's admin in ns, every verb on every alertbridge resource, virtual
// verbs included, and returns a client acting as user.
func appAdmin(ns, user string, more ...rbacv1.Subject) client.Client {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-admin"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	})).To(Succeed())
	Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "app-admin"},
		Subjects:   append([]rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}, more...),
	})).To(Succeed())
	c, err := client.New(env.As(user), client.Options{Scheme: kube.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}
