package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// grantsControllers are the controllers these specs test: triage Jobs and Receivers, on Alerts converted by hand.
var grantsControllers = []controllers.Controller{controllers.AlertController, controllers.IncidentController, controllers.NotificationController}

// credentialsAvailable reads obj (a Receiver or an SLOPolicy) again and
// returns its CredentialsAvailable condition.
func credentialsAvailable(g Gomega, obj client.Object) *metav1.Condition {
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	var conds []metav1.Condition
	switch o := obj.(type) {
	case *v1.Receiver:
		conds = o.Status.Conditions
	case *v1.SLOPolicy:
		conds = o.Status.Conditions
	}
	c := meta.FindStatusCondition(conds, v1.ConditionCredentialsAvailable)
	g.Expect(c).NotTo(BeNil())
	return c
}

// The operator reads a namespace's Secrets and runs triage Jobs there only
// once the namespace grants it (a RoleBinding of alertbridge-credentials or
// alertbridge-triage-jobs): whatever an alertbridge object names, a
// namespace that did not opt in keeps its Secrets and pods to itself, and
// the object says, in a condition, what to bind.
var _ = Describe("A namespace that grants the operator nothing", func() {
	var ns string
	// bind is the command each refusal must name.
	bind := func(role string) string {
		return "kubectl create rolebinding " + role + " -n " + ns + " --clusterrole=" + role +
			" --serviceaccount=" + env.Install.Namespace + ":" + env.Install.ServiceAccount
	}

	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "grants-")
		DeferCleanup(startOperator(controllers.Options{Only: grantsControllers}))
	})

	It("keeps a Receiver's Secret from the operator, says how to grant it, and works once granted", func() {
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pd"},
			StringData: map[string]string{"routingKey": "r0ut1ng"}})).To(Succeed())
		r := createReceiver(testbuild.MakeReceiver("pagerduty", ns).Type(v1.ReceiverPagerDuty).URL("http://127.0.0.1:1/v2/enqueue").Secret("pd", ""))
		credentials := func(g Gomega) *metav1.Condition { return credentialsAvailable(g, r.DeepCopy()) }
		Eventually(func(g Gomega) {
			ready := receiverReady(g, r)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(v1.ReasonNotGranted))
			c := credentials(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonNotGranted))
			g.Expect(c.Message).To(ContainSubstring(bind(controllers.CredentialsRole)))
		}, settle, poll).Should(Succeed())

		grant(ns, controllers.CredentialsRole)
		// A Receiver not Ready is read again within recheckReady.
		Eventually(func(g Gomega) {
			g.Expect(receiverReady(g, r).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(credentials(g).Status).To(Equal(metav1.ConditionTrue))
		}, 2*settle, poll).Should(Succeed())
	})

	It("runs no triage Job, says how to grant it, and runs one once granted", func() {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: triageSA, Namespace: ns,
			Annotations: map[string]string{v1.TriageServiceAccountAnnotation: "true"}}}
		Expect(k8s.Create(ctx, sa)).To(Succeed())
		createPolicy(jobPolicy(ns, time.Millisecond))
		first, err := incident.Convert(ctx, k8s, client.ObjectKeyFromObject(sigAlert(ns, "a", v1.SeverityP2)), incident.Options{Caller: adminUser})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			inc := getIncident(g, ns, first.Incident.Name)
			c := meta.FindStatusCondition(inc.Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonNotGranted))
			g.Expect(c.Message).To(ContainSubstring(bind(controllers.TriageJobsRole)))
		}, settle, poll).Should(Succeed())
		Consistently(func(g Gomega) []string {
			var names []string
			for _, j := range listJobs(g, ns) {
				names = append(names, j.Name)
			}
			return names
		}, quietFor, poll).Should(BeEmpty())

		grant(ns, controllers.TriageJobsRole)
		second, err := incident.Convert(ctx, k8s, client.ObjectKeyFromObject(sigAlert(ns, "b", v1.SeverityP2)), incident.Options{Caller: adminUser})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(listJobs(g, ns)).NotTo(BeEmpty())
			inc := getIncident(g, ns, second.Incident.Name)
			c := meta.FindStatusCondition(inc.Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(v1.ReasonJobCreated))
		}, settle, poll).Should(Succeed())
	})
})

// The review's attack, made for real (server-side dry-run, so nothing runs)
// as each of alertbridge's identities: a privileged, hostPath, hostNetwork
// Job in kube-system running as a cluster-admin-bound ServiceAccount, and a
// read of Helm's release Secret by name. Neither identity may.
var _ = Describe("alertbridge's identities", func() {
	It("may not run a privileged Job in kube-system nor read a Helm release Secret", func() {
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "installer", Namespace: "kube-system"}})).
			To(Or(Succeed(), WithTransform(apierrors.IsAlreadyExists, BeTrue())))
		Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "installer-cluster-admin"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "installer", Namespace: "kube-system"}},
		})).To(Or(Succeed(), WithTransform(apierrors.IsAlreadyExists, BeTrue())))
		release := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.platform.v1", Namespace: "kube-system"},
			Type: "helm.sh/release.v1", StringData: map[string]string{"release": "H4sI..."}}
		Expect(k8s.Create(ctx, release)).To(Or(Succeed(), WithTransform(apierrors.IsAlreadyExists, BeTrue())))

		privileged := func() *batchv1.Job {
			return &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "owned", Namespace: "kube-system"},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					ServiceAccountName: "installer", HostNetwork: true, RestartPolicy: corev1.RestartPolicyNever,
					Volumes: []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
					Containers: []corev1.Container{{Name: "x", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
						VolumeMounts: []corev1.VolumeMount{{Name: "root", MountPath: "/host"}}}},
				}}},
			}
		}
		for name, cfg := range map[string]*rest.Config{"the controller manager": env.Operator, "the HTTP API": env.API} {
			c, err := client.New(cfg, client.Options{Scheme: scheme})
			Expect(err).NotTo(HaveOccurred())
			err = c.Create(ctx, privileged(), client.DryRunAll)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s creating the Job: %v", name, err)
			err = c.Get(ctx, client.ObjectKeyFromObject(release), &corev1.Secret{})
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s reading the Helm release Secret: %v", name, err)
		}
	})
})
