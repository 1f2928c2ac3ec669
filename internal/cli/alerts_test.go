package cli_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

type list struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Items      []v1.Alert `json:"items"`
}

func decode[T any](r result) T {
	var v T
	ExpectWithOffset(1, json.Unmarshal([]byte(r.out), &v)).To(Succeed(), "stdout: %s\nstderr: %s", r.out, r.err)
	return v
}

func succeeded(r result) {
	ExpectWithOffset(1, r.code).To(Equal(cli.ExitOK), "stderr: %s", r.err)
}

var _ = Describe("alertbridge alerts", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "cli-") })

	ingest := func(host string) cli.IngestResult {
		r := run("", "alerts", "ingest", "-n", ns, "--service", "gateway", "--kind", "latency", "--severity", "p2",
			"--title", "p95 above 300ms", "--label", "host="+host, "--source", "monitor@node1", "-o", "json")
		succeeded(r)
		return decode[cli.IngestResult](r)
	}

	It("ingests from flags and reports the dedupe decision", func() {
		first := ingest("n1")
		Expect(first).To(MatchFields(first.AlertRef, true, false, 1))
		second := ingest("n1")
		Expect(second.Deduped).To(BeTrue())
		Expect(second.AlertRef).To(Equal(first.AlertRef))
		Expect(second.Occurrences).To(BeEquivalentTo(2))

		r := run("", "alerts", "ingest", "-n", ns, "--service", "gateway", "--kind", "latency", "--title", "again", "--label", "host=n1")
		succeeded(r)
		Expect(r.out).To(MatchRegexp(`ACCEPTED\s+DEDUPED\s+ALERT\s+OCCURRENCES\ntrue\s+true\s+` + first.AlertRef + `\s+3\n`))
	})

	It("ingests the HTTP JSON from stdin, snake_case included, and names bad fields", func() {
		r := run(`{"alerts":[{"service":"api","kind":"error_rate","title":"5xx","dedupe_ttl_minutes":5},{"service":"api","kind":"error_rate","title":"5xx"}]}`,
			"alerts", "ingest", "-n", ns, "-f", "-", "-o", "json")
		succeeded(r)
		got := decode[map[string][]cli.IngestResult](r)["results"]
		Expect(got).To(HaveLen(2))
		Expect(got[1].Deduped).To(BeTrue())
		Expect(got[1].AlertRef).To(Equal(got[0].AlertRef))
		a := &v1.Alert{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: got[0].AlertRef}, a)).To(Succeed())
		Expect(a.Spec.DedupeTTL.Duration.Minutes()).To(BeEquivalentTo(5))

		bad := run(`{"service":"api","kind":"ErrorRate","title":"x","dedupe_ttl_minutes":"soon"}`, "alerts", "ingest", "-n", ns, "-f", "-")
		Expect(bad.code).To(Equal(cli.ExitUsage))
		Expect(bad.err).To(ContainSubstring("kind: Invalid value"))
		Expect(bad.err).To(ContainSubstring("dedupe_ttl_minutes: Invalid value"))

		bad = run("", "alerts", "ingest", "-n", ns, "--kind", "latency", "--title", "x")
		Expect(bad.code).To(Equal(cli.ExitUsage))
		Expect(bad.err).To(ContainSubstring("--service: Required value"))
	})

	It("claims, refuses non-holders with exit 3, fails and acks with the documented exit codes", func() {
		a1, a2 := ingest("h1"), ingest("h2")

		r := run("", "alerts", "claim", "-n", ns, "--owner", "agent-a", "--limit", "5", "--lock-ttl", "1m", "-o", "json")
		succeeded(r)
		claimed := decode[list](r)
		Expect(claimed.Kind).To(Equal("List"))
		Expect(claimed.Items).To(HaveLen(2))
		for _, a := range claimed.Items {
			Expect(a.Kind).To(Equal("Alert"))
			Expect(a.Status.Phase).To(Equal(v1.AlertProcessing))
			Expect(a.Status.Claim.HolderIdentity).To(Equal("agent-a"))
			Expect(a.Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(60))
		}

		r = run("", "alerts", "claim", "-n", ns, "--owner", "agent-b", "-o", "json")
		Expect(r.code).To(Equal(cli.ExitNothing))
		Expect(decode[list](r).Items).To(BeEmpty())

		for _, verb := range [][]string{{"ack", a1.AlertRef}, {"fail", a1.AlertRef, "--error", "x"}, {"renew", a1.AlertRef}} {
			r = run("", append([]string{"alerts", "-n", ns, "--owner", "agent-b"}, verb...)...)
			Expect(r.code).To(Equal(cli.ExitNotHolder), "%v: %s", verb, r.err)
			Expect(r.err).To(ContainSubstring("is held by alice (owner agent-a)"))
		}

		r = run("", "alerts", "renew", a1.AlertRef, "-n", ns, "--owner", "agent-a", "--lock-ttl", "2m", "-o", "json")
		succeeded(r)
		Expect(decode[v1.Alert](r).Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(120))

		r = run("", "alerts", "fail", a1.AlertRef, "-n", ns, "--owner", "agent-a", "--error", "gateway timeout", "--retry-after", "1h", "-o", "json")
		succeeded(r)
		failed := decode[v1.Alert](r)
		Expect(failed.Status.Phase).To(Equal(v1.AlertFailed))
		Expect(failed.Status.LastError).To(Equal("gateway timeout"))

		r = run("", "alerts", "ack", a2.AlertRef, "-n", ns, "--owner", "agent-a", "--note", "fixed")
		succeeded(r)
		Expect(r.out).To(ContainSubstring("Acked"))

		// A Failed Alert may be acked by hand; the ack names the caller.
		r = run("", "alerts", "ack", a1.AlertRef, "-n", ns, "--note", "false positive", "-o", "json")
		succeeded(r)
		Expect(decode[v1.Alert](r).Status.Ack.By).To(Equal("alice"))

		r = run("", "alerts", "ack", a1.AlertRef, "-n", ns)
		Expect(r.code).To(Equal(cli.ExitUsage), "acking an Acked Alert: %s", r.err)
		r = run("", "alerts", "ack", "no-such-alert", "-n", ns)
		Expect(r.code).To(Equal(cli.ExitNotFound), r.err)
		r = run("", "alerts", "list", "-n", ns, "--as", "mallory")
		Expect(r.code).To(Equal(cli.ExitForbidden), r.err)
	})

	It("requeues a Processing Alert someone else holds and a Failed one, with a reason", func() {
		a1, a2 := ingest("r1"), ingest("r2")
		r := run("", "alerts", "claim", "-n", ns, "--owner", "agent-a", "--limit", "2", "--lock-ttl", "1h", "-o", "json")
		succeeded(r)
		r = run("", "alerts", "fail", a2.AlertRef, "-n", ns, "--owner", "agent-a", "--error", "timeout", "--retry-after", "1h")
		succeeded(r)

		r = run("", "alerts", "requeue", a1.AlertRef, "-n", ns)
		Expect(r.code).To(Equal(cli.ExitUsage), "no --reason: %s", r.err)
		r = run("", "alerts", "requeue", a1.AlertRef, a2.AlertRef, "-n", ns, "--reason", "worker hung", "-o", "json")
		succeeded(r)
		Expect(decode[list](r).Items).To(HaveLen(2))
		for _, a := range decode[list](r).Items {
			Expect(a.Status.Phase).To(Equal(v1.AlertNew))
			Expect(a.Status.Claim).To(BeNil())
			Expect(a.Status.Requeued.By).To(Equal("alice"))
			Expect(a.Status.Requeued.Reason).To(Equal("worker hung"))
		}
		// The operator (running in this suite) leaves a requeued Alert New.
		Consistently(func(g Gomega) {
			var a v1.Alert
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: a1.AlertRef}, &a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
			g.Expect(a.Status.Requeued).NotTo(BeNil())
		}, "2s", "200ms").Should(Succeed())
		r = run("", "alerts", "requeue", a1.AlertRef, "-n", ns, "--reason", "again")
		Expect(r.code).To(Equal(cli.ExitUsage), "a New Alert has nothing to requeue: %s", r.err)
	})

	It("acks several Alerts in one call, goes on past a refusal and exits with it", func() {
		a1, a2, a3 := ingest("m1"), ingest("m2"), ingest("m3")
		r := run("", "alerts", "claim", "-n", ns, "--owner", "agent-a", "--limit", "2", "-o", "json")
		succeeded(r)
		held := decode[list](r).Items
		Expect(held).To(HaveLen(2))
		other := run("", "alerts", "claim", "-n", ns, "--owner", "agent-b", "--limit", "1", "-o", "json")
		succeeded(other)
		theirs := decode[list](other).Items[0].Name
		Expect([]string{a1.AlertRef, a2.AlertRef, a3.AlertRef}).To(ContainElement(theirs))

		r = run("", "alerts", "ack", held[0].Name, theirs, held[1].Name, "-n", ns, "--owner", "agent-a", "--note", "fixed", "-o", "json")
		Expect(r.code).To(Equal(cli.ExitNotHolder), r.err)
		Expect(r.err).To(ContainSubstring(theirs + ": "))
		Expect(r.err).To(ContainSubstring("owner agent-b"))
		acked := decode[list](r).Items
		Expect(acked).To(HaveLen(2))
		for i, a := range acked {
			Expect(a.Name).To(Equal(held[i].Name))
			Expect(a.Status.Phase).To(Equal(v1.AlertAcked))
			Expect(a.Status.Ack.Note).To(Equal("fixed"))
		}
		still := &v1.Alert{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: theirs}, still)).To(Succeed())
		Expect(still.Status.Phase).To(Equal(v1.AlertProcessing))
	})

	It("lists with the filters of the alert queue, as a table or kubectl's JSON", func() {
		ingest("l1")
		ingest("l2")
		r := run(`{"service":"search","kind":"latency","title":"slow","env":"staging","source":"monitor@node2"}`, "alerts", "ingest", "-n", ns, "-f", "-")
		succeeded(r)
		claim := run("", "alerts", "claim", "-n", ns, "--owner", "agent-a", "--limit", "1")
		succeeded(claim)

		all := decode[list](run("", "alerts", "list", "-n", ns, "-o", "json"))
		Expect(all.Items).To(HaveLen(3))
		Expect(decode[list](run("", "alerts", "list", "-n", ns, "--status-in", "new", "-o", "json")).Items).To(HaveLen(2))
		Expect(decode[list](run("", "alerts", "list", "-n", ns, "--status-in", "Processing,failed", "-o", "json")).Items).To(HaveLen(1))
		Expect(decode[list](run("", "alerts", "list", "-n", ns, "--env", "staging", "-o", "json")).Items).To(HaveLen(1))
		Expect(decode[list](run("", "alerts", "list", "-n", ns, "--source", "monitor@node1", "-o", "json")).Items).To(HaveLen(2))
		Expect(decode[list](run("", "alerts", "list", "-n", ns, "--service", "search", "-o", "json")).Items).To(HaveLen(1))

		table := run("", "alerts", "list", "-A", "--service", "search")
		succeeded(table)
		Expect(table.out).To(MatchRegexp(`^NAMESPACE\s+NAME\s+PHASE\s+SERVICE`))
		Expect(table.out).To(ContainSubstring(ns))

		r = run("", "alerts", "list", "-n", ns, "--status-in", "done")
		Expect(r.code).To(Equal(cli.ExitUsage))
		Expect(r.err).To(ContainSubstring("--status-in"))
	})

	It("prints in kubectl get's formats: wide, yaml, name, jsonpath, go-template and custom-columns, with or without headers", func() {
		first := ingest("p1")
		second := ingest("p2")
		names := []string{first.AlertRef, second.AlertRef}
		slices.Sort(names)

		table := run("", "alerts", "list", "-n", ns)
		succeeded(table)
		Expect(table.out).To(MatchRegexp(`^NAME\s+PHASE\s+SERVICE\s+ENV\s+KIND\s+SEVERITY\s+OCCURRENCES\s+HOLDER\s+ATTEMPTS\s+LAST SEEN\s+TITLE\n`))
		Expect(table.out).NotTo(ContainSubstring("FINGERPRINT"))
		wide := run("", "alerts", "list", "-n", ns, "-o", "wide")
		succeeded(wide)
		Expect(wide.out).To(MatchRegexp(`TITLE\s+SOURCE\s+FINGERPRINT\s+INCIDENT\s+LAST ERROR\n`))
		Expect(wide.out).To(ContainSubstring("monitor@node1"))

		bare := run("", "alerts", "list", "-n", ns, "--no-headers")
		succeeded(bare)
		Expect(strings.Split(strings.TrimSpace(bare.out), "\n")).To(HaveLen(2))
		Expect(bare.out).NotTo(ContainSubstring("PHASE"))
		Expect(run("", "alerts", "list", "-n", ns, "--status-in", "acked", "--no-headers").out).To(BeEmpty(), "no rows, nothing printed")

		y := run("", "alerts", "list", "-n", ns, "-o", "yaml")
		succeeded(y)
		var l list
		Expect(yaml.Unmarshal([]byte(y.out), &l)).To(Succeed(), y.out)
		Expect(l.Kind).To(Equal("List"))
		Expect(l.Items).To(HaveLen(2))
		Expect(l.Items[0].APIVersion).To(Equal(v1.GroupVersion.String()))

		name := run("", "alerts", "list", "-n", ns, "-o", "name")
		succeeded(name)
		Expect(strings.Fields(name.out)).To(ConsistOf("alert.ops.alertbridge.io/"+names[0], "alert.ops.alertbridge.io/"+names[1]))

		jp := run("", "alerts", "list", "-n", ns, "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.occurrences}{\"\\n\"}{end}")
		succeeded(jp)
		Expect(strings.Fields(jp.out)).To(ConsistOf(names[0]+"=1", names[1]+"=1"))

		tmpl := run("", "alerts", "list", "-n", ns, "-o", "go-template={{range .items}}{{.spec.service}} {{end}}")
		succeeded(tmpl)
		Expect(tmpl.out).To(Equal("gateway gateway "))

		cc := run("", "alerts", "list", "-n", ns, "-o", "custom-columns=NAME:.metadata.name,PHASE:.status.phase,HOST:.spec.labels.host")
		succeeded(cc)
		Expect(cc.out).To(MatchRegexp(`^NAME\s+PHASE\s+HOST\n`))
		Expect(cc.out).To(MatchRegexp(names[0] + `\s+New\s+p[12]\n`))
		ccBare := run("", "alerts", "list", "-n", ns, "--no-headers", "-o", "custom-columns=NAME:.metadata.name")
		succeeded(ccBare)
		Expect(strings.Fields(ccBare.out)).To(ConsistOf(names[0], names[1]))

		// One Alert named is printed as itself, not in a List.
		claimed := decode[list](run("", "alerts", "claim", "-n", ns, "--owner", "agent-a", "--limit", "1", "-o", "json"))
		Expect(claimed.Items).To(HaveLen(1))
		one := run("", "alerts", "renew", claimed.Items[0].Name, "-n", ns, "--owner", "agent-a", "-o", "yaml")
		succeeded(one)
		var renewed v1.Alert
		Expect(yaml.Unmarshal([]byte(one.out), &renewed)).To(Succeed(), one.out)
		Expect(renewed.Kind).To(Equal("Alert"))
		Expect(renewed.Status.Claim.HolderIdentity).To(Equal("agent-a"))

		for _, bad := range []string{"xml", "jsonpath={.items[", "custom-columns="} {
			r := run("", "alerts", "list", "-n", ns, "-o", bad)
			Expect(r.code).To(Equal(cli.ExitUsage), "-o %s: %s", bad, r.out)
			Expect(r.err).To(ContainSubstring("--output"), "-o %s", bad)
		}

		// --sort-by orders the table's rows and a List's items, as kubectl
		// get does. p1 is seen again: the newest, and counted twice. The
		// two fields order the Alerts in opposite ways, so no fixed order
		// passes both. (--status-in leaves out the Deduplicated Alert the
		// second p1 was until the operator removes it.)
		again := ingest("p1")
		Expect(again.AlertRef).To(Equal(first.AlertRef))
		live := []string{"--status-in", "new,processing"}
		byCount := []string{second.AlertRef, first.AlertRef}
		byHost := []string{first.AlertRef, second.AlertRef}
		rows := func(args ...string) []string {
			GinkgoHelper()
			r := run("", append(append([]string{"alerts", "list", "-n", ns, "--no-headers"}, live...), args...)...)
			succeeded(r)
			var names []string
			for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
				names = append(names, strings.Fields(line)[0])
			}
			return names
		}
		Expect(rows("--sort-by", ".status.occurrences")).To(Equal(byCount))
		Expect(rows("--sort-by", "{.spec.labels.host}", "-o", "wide")).To(Equal(byHost))
		Expect(rows("--sort-by", "status.occurrences", "-o", "custom-columns=NAME:.metadata.name")).To(Equal(byCount))
		itemNames := func(l list) []string {
			var names []string
			for _, a := range l.Items {
				names = append(names, a.Name)
			}
			return names
		}
		listed := func(args ...string) result {
			return run("", append(append([]string{"alerts", "list", "-n", ns}, live...), args...)...)
		}
		Expect(itemNames(decode[list](listed("-o", "json", "--sort-by", ".status.occurrences")))).To(Equal(byCount))
		Expect(itemNames(decode[list](listed("-o", "json", "--sort-by", ".spec.labels.host")))).To(Equal(byHost))
		y = listed("-o", "yaml", "--sort-by", ".status.occurrences")
		succeeded(y)
		l = list{}
		Expect(yaml.Unmarshal([]byte(y.out), &l)).To(Succeed(), y.out)
		Expect(itemNames(l)).To(Equal(byCount))
		name = listed("-o", "name", "--sort-by", ".spec.labels.host")
		succeeded(name)
		Expect(strings.Fields(name.out)).To(Equal([]string{"alert.ops.alertbridge.io/" + byHost[0], "alert.ops.alertbridge.io/" + byHost[1]}))

		// --show-labels and -L print metadata.labels, as kubectl get does.
		var a v1.Alert
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: first.AlertRef}, &a)).To(Succeed())
		fp := a.Labels[v1.FingerprintLabel]
		Expect(fp).NotTo(BeEmpty())
		labelled := listed("-L", v1.FingerprintLabel, "--label-columns", "absent", "--show-labels")
		succeeded(labelled)
		Expect(labelled.out).To(MatchRegexp(`^NAME\s+PHASE\s+.*\s+TITLE\s+FINGERPRINT\s+ABSENT\s+LABELS\n`))
		Expect(labelled.out).To(MatchRegexp(first.AlertRef + `\s.*\s` + regexp.QuoteMeta(fp) + `\s+\S*` + regexp.QuoteMeta(v1.FingerprintLabel+"="+fp)))
		wideLabels := listed("-o", "wide", "-L", v1.FingerprintLabel)
		succeeded(wideLabels)
		Expect(wideLabels.out).To(MatchRegexp(`LAST ERROR\s+FINGERPRINT\n`))

		// Bad label and sort flags are refused, naming the flag, before
		// anything is printed.
		for _, bad := range [][]string{
			{"--sort-by", "{.metadata.name"},
			{"--sort-by", ".spec.nothing"},
			{"--sort-by", ".metadata.labels", "-o", "json"},
			{"--show-labels", "-o", "yaml"},
			{"-L", "host", "-o", "custom-columns=NAME:.metadata.name"},
		} {
			r := run("", append([]string{"alerts", "list", "-n", ns}, bad...)...)
			Expect(r.code).To(Equal(cli.ExitUsage), "%v: %s", bad, r.out)
			Expect(r.out).To(BeEmpty(), "%v", bad)
			flag := bad[0]
			if flag == "-L" {
				flag = "--label-columns"
			}
			Expect(r.err).To(ContainSubstring(flag), "%v", bad)
		}
	})
})

// MatchFields matches an ingest result.
func MatchFields(ref string, accepted, deduped bool, occurrences int64) OmegaMatcher {
	return Equal(cli.IngestResult{Accepted: accepted, Deduped: deduped, AlertRef: ref, Occurrences: occurrences})
}
