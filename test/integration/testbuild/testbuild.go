// Package testbuild builds the objects every test suite needs, so that a
// spec reads as what it checks and each suite does not keep its own copy.
// It takes a gomega.Gomega so Ginkgo specs (gomega.Default) and plain tests
// (gomega.NewWithT(t)) fail the same way.
package testbuild

import (
	"context"
	"maps"
	"regexp"
	"strings"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Namespace creates a namespace named prefix and a random suffix (each spec
// its own) through c and returns its name.
func Namespace(g gomega.Gomega, c client.Client, prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	g.Expect(c.Create(context.Background(), ns)).To(gomega.Succeed())
	return ns.Name
}

// dns matches what may not stand in a generated object name.
var dns = regexp.MustCompile(`[^a-z0-9-]+`)

// AlertOption changes an Alert that Alert builds.
type AlertOption func(*v1.Alert)

// Alert is the gateway's p95 latency Alert in ns, as a monitor would
// create it (not yet created); opts change it. Its name is generated from
// its service and kind.
func Alert(ns string, opts ...AlertOption) *v1.Alert {
	a := &v1.Alert{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns},
		Spec: v1.AlertSpec{
			Service: "gateway",
			Kind:    "latency",
			Title:   "p95 above 300ms",
			Source:  "monitor@node1",
		},
	}
	for _, o := range opts {
		o(a)
	}
	if a.Name == "" && a.GenerateName == "" {
		a.GenerateName = dns.ReplaceAllString(strings.ToLower(a.Spec.Service+"-"+a.Spec.Kind), "-") + "-"
	}
	return a
}

// Host sets the label host, which makes the Alert's fingerprint differ
// from another host's.
func Host(h string) AlertOption { return Labels("host", h) }

// Labels adds the label pairs k1, v1, k2, v2, ….
func Labels(kv ...string) AlertOption {
	return func(a *v1.Alert) {
		if a.Spec.Labels == nil {
			a.Spec.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			a.Spec.Labels[kv[i]] = kv[i+1]
		}
	}
}

// LabelMap adds labels.
func LabelMap(labels map[string]string) AlertOption {
	return func(a *v1.Alert) {
		if a.Spec.Labels == nil {
			a.Spec.Labels = map[string]string{}
		}
		maps.Copy(a.Spec.Labels, labels)
	}
}

// Service sets the service.
func Service(s string) AlertOption { return func(a *v1.Alert) { a.Spec.Service = s } }

// Kind sets the kind.
func Kind(k string) AlertOption { return func(a *v1.Alert) { a.Spec.Kind = k } }

// Env sets the environment.
func Env(e string) AlertOption { return func(a *v1.Alert) { a.Spec.Env = e } }

// Severity sets the severity.
func Severity(s v1.Severity) AlertOption { return func(a *v1.Alert) { a.Spec.Severity = s } }

// Title sets the title.
func Title(t string) AlertOption { return func(a *v1.Alert) { a.Spec.Title = t } }

// Named gives the Alert a fixed name instead of a generated one.
func Named(name string) AlertOption {
	return func(a *v1.Alert) { a.Name, a.GenerateName = name, "" }
}

// Alerts lists the Alerts of ns through c (a direct client: assertions
// never read a cache).
func Alerts(g gomega.Gomega, c client.Reader, ns string) []v1.Alert {
	var list v1.AlertList
	g.Expect(c.List(context.Background(), &list, client.InNamespace(ns))).To(gomega.Succeed())
	return list.Items
}

// WriteStatus writes obj's status through c, which should be the
// operator's client (testenv.Env.Operator): the admission policies let only
// the operator write the fields it owns, cluster administrators included,
// so specs that set up what the operator would have written write it as
// the operator. It re-reads obj, applies mutate and merge-patches the
// difference (removals included) under the resourceVersion read, again on
// a conflict; obj ends as stored.
func WriteStatus[T client.Object](g gomega.Gomega, c client.Client, obj T, mutate func(T)) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		orig := obj.DeepCopyObject().(T)
		mutate(obj)
		return c.Status().Patch(context.Background(), obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})).To(gomega.Succeed())
}
