package cli_test

import (
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

var _ = Describe("alertbridge dashboard", func() {
	create := func(ns, service, kind string) {
		Expect(k8s.Create(ctx, testbuild.MakeAlert("", ns).Service(service).Kind(kind).Title(service+" "+kind).Severity(v1.SeverityP1).Obj())).To(Succeed())
	}
	dashboard := func(args ...string) query.Dashboard {
		r := run("", append([]string{"dashboard", "-o", "json"}, args...)...)
		ExpectWithOffset(1, r.code).To(Equal(cli.ExitOK), r.err)
		var d query.Dashboard
		ExpectWithOffset(1, json.Unmarshal([]byte(r.out), &d)).To(Succeed())
		return d
	}

	It("shows counts by status, top signatures, latest alerts and open incidents of the namespace or all", func() {
		ns, other := testbuild.Namespace(Default, k8s, "cli-"), testbuild.Namespace(Default, k8s, "cli-")
		create(ns, "gateway", "latency")
		create(ns, "gateway", "latency")
		create(ns, "payments", "error_rate")
		create(other, "search", "latency")
		gw := testbuild.MakeIncident("gw", ns).Title("gateway slow").Severity(v1.SeverityP1).State(v1.IncidentOpen).Obj()
		Expect(k8s.Create(ctx, gw)).To(Succeed())
		// What the notification controller records; the last one is shown.
		sent := metav1.Now()
		unrecorded := gw.DeepCopy()
		gw.Status.Notifications = []v1.IncidentNotification{
			{Receiver: "slack", Event: v1.NotifyOpened, Seq: 1, State: v1.IncidentOpen, Severity: v1.SeverityP1, Key: "k1",
				DeliveryAttempts: v1.DeliveryAttempts{Attempts: 1, LastAttemptAt: &sent, DeliveredAt: &sent}},
			// Given up (not pending: the operator gives up the pending
			// notifications of Receivers that do not exist, as here).
			{Receiver: "pagerduty", Event: v1.NotifyOpened, Seq: 1, State: v1.IncidentOpen, Severity: v1.SeverityP1, Key: "k2",
				DeliveryAttempts: v1.DeliveryAttempts{Attempts: 3, LastAttemptAt: &sent, LastError: "pagerduty answered HTTP 400 (Bad Request)"}},
		}
		asOperator, err := env.OperatorClient()
		Expect(err).NotTo(HaveOccurred())
		Expect(asOperator.Status().Patch(ctx, gw, client.MergeFrom(unrecorded))).To(Succeed())

		Eventually(func(g Gomega) {
			d := dashboard("-n", ns, "--window", "240m")
			g.Expect(d.Namespace).To(Equal(ns))
			g.Expect(d.WindowMinutes).To(BeEquivalentTo(240))
			g.Expect(d.Counts).To(Equal(map[string]int64{"New": 2, "Processing": 0, "Acked": 0, "Failed": 0, "Deduplicated": 1}))
			g.Expect(d.Occurrences).To(BeEquivalentTo(3))
			g.Expect(d.TopSignatures).To(HaveLen(2))
			g.Expect(d.TopSignatures[0].Signature).To(Equal("gateway/prod/latency"))
			g.Expect(d.TopSignatures[0].Occurrences).To(BeEquivalentTo(2))
			g.Expect(d.Latest).To(HaveLen(2))
			g.Expect(d.OpenIncidents).To(HaveLen(1))
			n := d.OpenIncidents[0].LastNotification
			g.Expect(n).NotTo(BeNil())
			g.Expect([]any{n.Receiver, n.Event, n.Result, n.Attempts, n.LastError}).To(Equal([]any{
				"pagerduty", "Opened", query.NotificationFailed, int32(3), "pagerduty answered HTTP 400 (Bad Request)"}))
		}, settle, poll).Should(Succeed())

		// -A covers every namespace.
		Eventually(func(g Gomega) {
			seen := map[string]bool{}
			for _, a := range dashboard("-A", "--window", "0").Latest {
				seen[a.Namespace] = true
			}
			g.Expect(seen).To(HaveKey(ns))
			g.Expect(seen).To(HaveKey(other))
		}, settle, poll).Should(Succeed())

		r := run("", "dashboard", "-n", ns)
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(ContainSubstring("namespace " + ns))
		Expect(r.out).To(MatchRegexp(`NEW\s+PROCESSING\s+ACKED\s+FAILED\s+DEDUPLICATED\n2\s+0\s+0\s+0\s+1\n`))
		Expect(r.out).To(MatchRegexp(`gateway/prod/latency\s+1\s+2`))
		Expect(r.out).To(ContainSubstring("gateway slow"))
		Expect(r.out).To(MatchRegexp(`LAST NOTIFICATION\s+TITLE\n`))
		Expect(r.out).To(ContainSubstring("pagerduty Opened failed (3 attempts)"))
		Expect(r.out).To(ContainSubstring("No SLOPolicies."))
	})

	It("refuses bad flags with exit 1", func() {
		Expect(run("", "dashboard", "--window", "-5m").code).To(Equal(cli.ExitUsage))
		Expect(run("", "dashboard", "-o", "wide").code).To(Equal(cli.ExitUsage))
		Expect(run("", "dashboard", "--watch", "--interval", "10ms").code).To(Equal(cli.ExitUsage))
	})
})
