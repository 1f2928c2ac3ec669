package controllers_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/discovery"

	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// The section of docs/operations.md that justifies every cluster-wide write
// of the operator, one table row per resource.
const (
	roleDoc     = "docs/operations.md"
	roleSection = "### What the operator's ClusterRole allows, and why"
)

// writeVerbs are the verbs that change something.
var writeVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

type identity struct {
	user   string
	groups []string
}

// allowedAnywhere asks the API server (a SubjectAccessReview with no
// namespace: in every namespace) whether who may verb group/resource.
func allowedAnywhere(g Gomega, who identity, group, resource, verb string) bool {
	res, sub, _ := strings.Cut(resource, "/")
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: who.user, Groups: who.groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Group: group, Resource: res, Subresource: sub, Verb: verb},
	}}
	g.Expect(k8s.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed
}

// servedResources lists every resource and subresource the API server
// serves, as group/resource, once each.
func servedResources() []schema.GroupResource {
	GinkgoHelper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	_, lists, err := dc.ServerGroupsAndResources()
	Expect(err).NotTo(HaveOccurred())
	seen := map[schema.GroupResource]bool{}
	var out []schema.GroupResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		Expect(err).NotTo(HaveOccurred())
		for _, r := range l.APIResources {
			gr := schema.GroupResource{Group: gv.Group, Resource: r.Name}
			if !seen[gr] {
				seen[gr] = true
				out = append(out, gr)
			}
		}
	}
	return out
}

// writesOf is every "group resource verb" write who may make anywhere.
func writesOf(who identity, resources []schema.GroupResource) []string {
	GinkgoHelper()
	var (
		mu  sync.Mutex
		out []string
		wg  sync.WaitGroup
	)
	work := make(chan schema.GroupResource)
	for range 8 {
		wg.Go(func() {
			defer GinkgoRecover()
			for gr := range work {
				for _, verb := range writeVerbs {
					if allowedAnywhere(Default, who, gr.Group, gr.Resource, verb) {
						mu.Lock()
						out = append(out, groupName(gr.Group)+" "+gr.Resource+" "+verb)
						mu.Unlock()
					}
				}
			}
		})
	}
	for _, gr := range resources {
		work <- gr
	}
	close(work)
	wg.Wait()
	slices.Sort(out)
	return out
}

func groupName(g string) string {
	if g == "" {
		return "core"
	}
	return g
}

// justifiedWrites reads the table of roleSection in roleDoc: rows
// "| `group` | `resource` | verb, verb | why |".
func justifiedWrites() []string {
	GinkgoHelper()
	doc, err := os.ReadFile(filepath.Join(testenv.Root(), roleDoc))
	Expect(err).NotTo(HaveOccurred())
	_, section, ok := strings.Cut(string(doc), roleSection+"\n")
	Expect(ok).To(BeTrue(), "%s has no section %q", roleDoc, roleSection)
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	var out []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cols := strings.Split(line, "|")
		Expect(len(cols)).To(BeNumerically(">=", 5), "%s row %q", roleDoc, line)
		group, resource := strings.Trim(strings.TrimSpace(cols[1]), "`"), strings.Trim(strings.TrimSpace(cols[2]), "`")
		Expect(strings.TrimSpace(cols[4])).NotTo(BeEmpty(), "%s row %q gives no reason", roleDoc, line)
		for _, v := range strings.Split(cols[3], ",") {
			out = append(out, group+" "+resource+" "+strings.TrimSpace(v))
		}
	}
	slices.Sort(out)
	return out
}

var _ = Describe("The operator's ClusterRole", func() {
	It("grants no cluster-wide write the docs do not justify, and nothing on admission policies", func() {
		ns, sa := env.Install.Namespace, env.Install.ServiceAccount
		operator := identity{user: env.Install.Username(), groups: append(serviceaccount.MakeGroupNames(ns), "system:authenticated")}
		// What any ServiceAccount of the namespace may do is not the
		// ClusterRole's doing (self reviews, discovery).
		baseline := identity{user: serviceaccount.MakeUsername(ns, sa+"-baseline"), groups: operator.groups}

		resources := servedResources()
		var writes []string
		for _, w := range writesOf(operator, resources) {
			f := strings.Fields(w)
			if !allowedAnywhere(Default, baseline, strings.TrimPrefix(f[0], "core"), f[1], f[2]) {
				writes = append(writes, w)
			}
		}
		Expect(writes).To(Equal(justifiedWrites()),
			"`kubectl auth can-i --list` of the operator must match the table in %s %q: add a reason there, or drop the right", roleDoc, roleSection)

		for _, gr := range resources {
			if gr.Group != "admissionregistration.k8s.io" {
				continue
			}
			for _, verb := range append([]string{"get", "list", "watch"}, writeVerbs...) {
				Expect(allowedAnywhere(Default, operator, gr.Group, gr.Resource, verb)).To(BeFalse(),
					"the operator may %s %s: it installs no admission policy", verb, gr)
			}
		}
		for _, c := range []struct{ group, resource, verb string }{
			// Reading Secrets and running triage Jobs: only where a
			// namespace grants it (alertbridge-credentials,
			// alertbridge-triage-jobs), never cluster-wide.
			{"", "secrets", "get"}, {"batch", "jobs", "create"}, {"", "serviceaccounts", "get"}, {"", "pods", "create"},
			{"", "secrets", "list"}, {"", "secrets", "watch"},
			{"", "users", "impersonate"}, {"", "groups", "impersonate"}, {"", "serviceaccounts", "impersonate"},
			{"", "serviceaccounts/token", "create"}, {"", "pods/exec", "create"},
			{"rbac.authorization.k8s.io", "clusterroles", "escalate"}, {"rbac.authorization.k8s.io", "clusterroles", "bind"},
			{"rbac.authorization.k8s.io", "roles", "escalate"}, {"rbac.authorization.k8s.io", "roles", "bind"},
		} {
			Expect(allowedAnywhere(Default, operator, c.group, c.resource, c.verb)).To(BeFalse(),
				fmt.Sprintf("the operator may %s %s.%s", c.verb, c.resource, groupName(c.group)))
		}
		// The admission policies know the operator by name, not by a verb
		// a wildcard grant would also hold.
		Expect(allowedAnywhere(Default, operator, "ops.alertbridge.io", "alerts/status", "operate")).To(BeFalse())
	})
})

var _ = Describe("The HTTP API's ClusterRole", func() {
	// The process open to the network: what its token may do if it leaked.
	It("writes alertbridge's kinds and makes reviews, and reaches no Secret, pod, Job or role anywhere", func() {
		ns := env.Install.Namespace
		api := identity{user: env.Install.APIUsername(), groups: append(serviceaccount.MakeGroupNames(ns), "system:authenticated")}
		baseline := identity{user: serviceaccount.MakeUsername(ns, env.Install.APIServiceAccount+"-baseline"), groups: api.groups}
		for _, w := range writesOf(api, servedResources()) {
			f := strings.Fields(w)
			if allowedAnywhere(Default, baseline, strings.TrimPrefix(f[0], "core"), f[1], f[2]) {
				continue
			}
			Expect(f[0]).To(BeElementOf("ops.alertbridge.io", "authentication.k8s.io", "authorization.k8s.io"),
				"the HTTP API may %s", w)
		}
		for _, c := range []struct{ group, resource, verb string }{
			{"", "secrets", "get"}, {"", "secrets", "list"}, {"", "secrets", "watch"},
			{"", "configmaps", "get"}, {"", "pods", "create"}, {"", "pods/exec", "create"}, {"batch", "jobs", "create"},
			{"", "serviceaccounts", "get"}, {"", "serviceaccounts/token", "create"},
			{"", "users", "impersonate"}, {"", "serviceaccounts", "impersonate"},
			{"rbac.authorization.k8s.io", "rolebindings", "create"}, {"rbac.authorization.k8s.io", "clusterroles", "escalate"},
			{"ops.alertbridge.io", "alerts", "delete"}, {"ops.alertbridge.io", "alertroutingpolicies", "update"},
			{"ops.alertbridge.io", "receivers", "update"}, {"ops.alertbridge.io", "silences", "create"},
			{"ops.alertbridge.io", "slopolicies", "update"},
		} {
			Expect(allowedAnywhere(Default, api, c.group, c.resource, c.verb)).To(BeFalse(),
				fmt.Sprintf("the HTTP API may %s %s.%s", c.verb, c.resource, groupName(c.group)))
		}
		// In its own namespace: its certificate's Secret, read only.
		sar := func(verb, name string) bool {
			r := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: api.user, Groups: api.groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Resource: "secrets", Verb: verb, Name: name},
			}}
			Expect(k8s.Create(ctx, r)).To(Succeed())
			return r.Status.Allowed
		}
		Expect(sar("get", "alertbridge-api-tls")).To(BeTrue())
		Expect(sar("update", "alertbridge-api-tls")).To(BeFalse())
		Expect(sar("get", "alertbridge-api-ca")).To(BeFalse(), "the HTTP API reads the CA's key")
		Expect(sar("get", "alertbridge-database")).To(BeFalse())
	})
})
