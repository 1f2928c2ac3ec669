package v1alpha1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// Every suite starts its objects from testbuild's builders; a default that
// the API server refused would fail specs far from the cause.
var _ = Describe("testbuild's defaults", func() {
	It("pass the API server's validation, kind by kind", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		for _, obj := range []client.Object{
			testbuild.MakeAlert("", ns).Obj(),
			testbuild.MakeAlert("named", ns).Obj(),
			testbuild.MakeIncident("", ns).Obj(),
			testbuild.MakeSLOPolicy("", ns).Obj(),
			testbuild.MakeAlertRoutingPolicy(ns).Obj(),
			testbuild.MakeSilence("", ns).Obj(),
			testbuild.MakeReceiver("", ns).Obj(),
		} {
			Expect(k8s.Create(ctx, obj)).To(Succeed(), "%T", obj)
		}
	})

	It("name an unnamed Alert after its service and kind", func() {
		a := testbuild.MakeAlert("", "ns").Service("payments").Kind("error_rate").Obj()
		Expect(a.GenerateName).To(Equal("payments-error-rate-"))
	})
})
