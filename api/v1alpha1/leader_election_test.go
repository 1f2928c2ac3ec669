package v1alpha1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// controller-runtime's leader election records who took the Lease as an
// Event of the core group (events, apiGroup ""), not of events.k8s.io, in
// the Lease's namespace. The operator writes it as its own ServiceAccount
// under the shipped leader-election Role, the way client-go's recorder
// does: a create, and a patch when the same Event repeats.
var _ = Describe("The leader-election Role (alertbridge-leader-election)", func() {
	It("lets the operator record and repeat the leader-election Event in its namespace", func() {
		cs, err := kubernetes.NewForConfig(env.Operator)
		Expect(err).NotTo(HaveOccurred())
		ns := env.Install.Namespace
		ev := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "alertbridge.ops.alertbridge.io.", Namespace: ns},
			InvolvedObject: corev1.ObjectReference{
				APIVersion: coordinationv1.SchemeGroupVersion.String(), Kind: "Lease", Namespace: ns, Name: "alertbridge.ops.alertbridge.io",
			},
			Reason: "LeaderElection", Message: "alertbridge-manager-0 became leader", Type: corev1.EventTypeNormal,
			Source: corev1.EventSource{Component: "alertbridge-manager-0"}, Count: 1,
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
		}
		created, err := cs.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cs.CoreV1().Events(ns).Patch(ctx, created.Name, types.StrategicMergePatchType, []byte(`{"count":2}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
	})
})
