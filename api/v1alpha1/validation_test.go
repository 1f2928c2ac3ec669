package v1alpha1_test

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

var _ = Describe("Alert validation", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	It("defaults env and severity", func() {
		a := testbuild.MakeAlert("", ns).Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Expect(a.Spec.Env).To(Equal("prod"))
		Expect(a.Spec.Severity).To(Equal(v1.SeverityP3))
	})

	DescribeTable("refuses invalid Alerts naming the field",
		func(mutate func(*v1.Alert), field string) {
			a := testbuild.MakeAlert("", ns).Obj()
			mutate(a)
			err := k8s.Create(ctx, a)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
		},
		Entry("missing service", func(a *v1.Alert) { a.Spec.Service = "" }, "spec.service"),
		Entry("service not a DNS label", func(a *v1.Alert) { a.Spec.Service = "Gate_way" }, "spec.service"),
		Entry("missing title", func(a *v1.Alert) { a.Spec.Title = "" }, "spec.title"),
		Entry("title too long", func(a *v1.Alert) { a.Spec.Title = strings.Repeat("t", 257) }, "spec.title"),
		Entry("kind with a capital", func(a *v1.Alert) { a.Spec.Kind = "Latency" }, "spec.kind"),
		Entry("kind with a dash", func(a *v1.Alert) { a.Spec.Kind = "error-rate" }, "spec.kind"),
		Entry("missing kind", func(a *v1.Alert) { a.Spec.Kind = "" }, "spec.kind"),
		Entry("unknown severity", func(a *v1.Alert) { a.Spec.Severity = "P9" }, "spec.severity"),
		Entry("message too long", func(a *v1.Alert) { a.Spec.Message = strings.Repeat("m", 4097) }, "spec.message"),
		Entry("too many labels", func(a *v1.Alert) {
			a.Spec.Labels = map[string]string{}
			for i := range 33 {
				a.Spec.Labels[fmt.Sprintf("l%d", i)] = "v"
			}
		}, "spec.labels"),
		Entry("dedupeTTL not a duration", func(a *v1.Alert) {
			a.Spec.DedupeTTL = &metav1.Duration{Duration: 0}
		}, "spec.dedupeTTL"),
		Entry("bad fingerprint override", func(a *v1.Alert) { a.Spec.Fingerprint = "has space" }, "spec.fingerprint"),
	)

	It("keeps the spec immutable and the stored Alert intact", func() {
		a := testbuild.MakeAlert("", ns).Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		changed := a.DeepCopy()
		changed.Spec.Title = "something else"
		err := k8s.Update(ctx, changed)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec is immutable"))
		var stored v1.Alert
		Expect(k8s.Get(ctx, keyOf(a), &stored)).To(Succeed())
		Expect(stored.Spec.Title).To(Equal("p95 above 300ms"))
	})
})

// phases the transition table speaks of; "" is an Alert before the
// controller's first decision.
var phases = []v1.AlertPhase{"", v1.AlertNew, v1.AlertProcessing, v1.AlertAcked, v1.AlertFailed, v1.AlertDeduplicated}

// legal is DESIGN.md's transition table, written out independently of the
// code that enforces it. Staying in a phase is always legal.
var legal = map[v1.AlertPhase][]v1.AlertPhase{
	"":                 {v1.AlertNew, v1.AlertDeduplicated},
	v1.AlertNew:        {v1.AlertProcessing, v1.AlertAcked, v1.AlertDeduplicated},
	v1.AlertProcessing: {v1.AlertAcked, v1.AlertFailed, v1.AlertNew},
	v1.AlertFailed:     {v1.AlertNew, v1.AlertAcked},
}

// pathTo is a legal sequence of writes that reaches a phase.
var pathTo = map[v1.AlertPhase][]v1.AlertPhase{
	"":                   nil,
	v1.AlertNew:          {v1.AlertNew},
	v1.AlertProcessing:   {v1.AlertNew, v1.AlertProcessing},
	v1.AlertAcked:        {v1.AlertNew, v1.AlertAcked},
	v1.AlertFailed:       {v1.AlertNew, v1.AlertProcessing, v1.AlertFailed},
	v1.AlertDeduplicated: {v1.AlertDeduplicated},
}

// withPhase sets phase and the fields the CRD requires alongside it.
func withPhase(s *v1.AlertStatus, p v1.AlertPhase) {
	now := time.Now()
	s.Phase = p
	switch p {
	case v1.AlertProcessing:
		s.Claim = &v1.AlertClaim{HolderIdentity: "agent-1", AcquireTime: metav1.NewMicroTime(now), RenewTime: metav1.NewMicroTime(now), LeaseDurationSeconds: 60}
	case v1.AlertAcked:
		s.Ack = &v1.AlertAck{By: "alice", Note: "false positive", At: metav1.NewTime(now)}
	case v1.AlertFailed:
		s.LastError = "gateway timeout"
		s.RetryAfter = ptr.To(metav1.NewTime(now.Add(time.Minute)))
	case v1.AlertDeduplicated:
		s.DuplicateOf = "canonical"
	}
}

// asOperator writes an Alert's status as the operator, whom the admission
// policies exempt, so that the CRD's own rules alone judge the write: a
// merge patch of what mutate changed (removals included), under the
// resourceVersion read. a follows what was stored.
func asOperator(a *v1.Alert, mutate func(*v1.AlertStatus)) error {
	GinkgoHelper()
	orig := a.DeepCopy()
	mutate(&a.Status)
	c, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	if err := c.Status().Patch(ctx, a, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		*a = *orig
		return err
	}
	return nil
}

var _ = Describe("Alert phase transitions", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	for _, from := range phases {
		for _, to := range phases {
			if to == "" {
				continue
			}
			allowed := from == to
			for _, p := range legal[from] {
				allowed = allowed || p == to
			}
			verb := "refuses"
			if allowed {
				verb = "accepts"
			}
			It(fmt.Sprintf("%s %q → %q", verb, from, to), func() {
				a := testbuild.MakeAlert("", ns).Obj()
				Expect(k8s.Create(ctx, a)).To(Succeed())
				for _, p := range pathTo[from] {
					Expect(asOperator(a, func(s *v1.AlertStatus) { withPhase(s, p) })).To(Succeed(), "reaching %s", p)
				}
				err := asOperator(a, func(s *v1.AlertStatus) { withPhase(s, to) })
				if allowed {
					Expect(err).NotTo(HaveOccurred())
					return
				}
				Expect(err).To(HaveOccurred())
				Expect(err.Error()).To(ContainSubstring("status.phase"))
				var stored v1.Alert
				Expect(k8s.Get(ctx, keyOf(a), &stored)).To(Succeed())
				Expect(stored.Status.Phase).To(Equal(from), "a refused write must leave the stored phase alone")
			})
		}
	}

	It("refuses removing the phase", func() {
		a := testbuild.MakeAlert("", ns).Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Expect(asOperator(a, func(s *v1.AlertStatus) { withPhase(s, v1.AlertNew) })).To(Succeed())
		err := asOperator(a, func(s *v1.AlertStatus) { s.Phase = "" })
		Expect(err).To(MatchError(ContainSubstring("status.phase")))
	})

	DescribeTable("requires the fields of a phase",
		func(p v1.AlertPhase, strip func(*v1.AlertStatus), field string) {
			a := testbuild.MakeAlert("", ns).Obj()
			Expect(k8s.Create(ctx, a)).To(Succeed())
			for _, step := range pathTo[p] {
				err := asOperator(a, func(s *v1.AlertStatus) {
					withPhase(s, step)
					if step == p {
						strip(s)
					}
				})
				if step == p {
					Expect(err).To(MatchError(ContainSubstring(field)))
					return
				}
				Expect(err).NotTo(HaveOccurred())
			}
		},
		Entry("Processing needs a claim", v1.AlertProcessing, func(s *v1.AlertStatus) { s.Claim = nil }, "status.claim"),
		Entry("Acked needs ack", v1.AlertAcked, func(s *v1.AlertStatus) { s.Ack = nil }, "status.ack"),
		Entry("Failed needs retryAfter", v1.AlertFailed, func(s *v1.AlertStatus) { s.RetryAfter = nil }, "status.retryAfter"),
		Entry("Deduplicated needs duplicateOf", v1.AlertDeduplicated, func(s *v1.AlertStatus) { s.DuplicateOf = "" }, "status.duplicateOf"),
	)
})
