// Package testbuild builds the objects every test suite needs, so that a
// spec reads as what it checks and each suite does not keep its own copy.
//
// Each kind of the API has a builder: Make<Kind>(name, ns) starts from an
// object the API server accepts as it stands, a method per field changes
// it, and Obj ends it, e.g.
//
//	testbuild.MakeAlert("", ns).Service("payments").Kind("error_rate").Host("n1").Obj()
//
// Status setters build what the operator would have written, for unit
// tests and for WriteStatus. The builders import only the API and k8s.io,
// so the unit tests of internal packages and controllers may use them.
//
// The helpers that reach an API server take a gomega.Gomega so Ginkgo specs
// (gomega.Default) and plain tests (gomega.NewWithT(t)) fail the same way.
package testbuild

import (
	"context"
	"regexp"

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
