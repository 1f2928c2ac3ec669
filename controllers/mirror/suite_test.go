package mirror_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/alertbridge/alertbridge/controllers"
	mirrorctrl "github.com/alertbridge/alertbridge/controllers/mirror"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// Timeouts for Eventually/Consistently, named so intent is visible.
const (
	settle   = 30 * time.Second
	poll     = 50 * time.Millisecond
	gcDelay  = 2 * time.Second
	quietFor = 2 * time.Second
)

var (
	env    *testenv.Env
	scheme *runtime.Scheme
	// k8s is a direct cluster-admin client, for setting up and asserting:
	// assertions never read a cache.
	k8s client.Client
	// asOperator writes as the operator's ServiceAccount: what only the
	// operator may write (the admission policies judge the administrator's
	// writes as anyone's).
	asOperator client.Client
	ctx        context.Context
)

func TestMirror(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Mirror suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx = context.Background()
	var err error
	// The specs with the mirror off need config/without-mirror; those with
	// the mirror on add the finalizer component config/default ships
	// (testenv.InstallMirrorFinalizer) while they run.
	env, err = testenv.StartWith(testenv.WithoutMirrorInstall)
	Expect(err).NotTo(HaveOccurred())
	scheme = kube.NewScheme()
	k8s, err = client.New(env.Admin, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	asOperator, err = client.New(env.Operator, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// operatorOptions are the reconcilers' options of every mirror spec.
func operatorOptions() controllers.Options {
	return controllers.Options{DuplicateGCDelay: gcDelay, AlertConcurrency: 4}
}

// startOperator runs the real manager with every controller and the mirror
// configured by m, as `alertbridge run` does (as its ServiceAccount, under
// the shipped ClusterRole and admission policies), until stop is called.
func startOperator(m mirrorctrl.Options) (stop func()) {
	GinkgoHelper()
	op, err := testoperator.Start(env.Operator, operatorOptions(), testoperator.WithMirror(m))
	Expect(err).NotTo(HaveOccurred())
	return func() { Expect(op.Stop(settle)).To(Succeed()) }
}

// startServingProbes is startOperator with the health probes served, for
// specs of readiness; readyz asks them.
func startServingProbes(m mirrorctrl.Options) (op *testoperator.Operator, stop func()) {
	GinkgoHelper()
	op, err := testoperator.StartServingProbes(env.Operator, operatorOptions(), testoperator.WithMirror(m))
	Expect(err).NotTo(HaveOccurred())
	return op, func() { Expect(op.Stop(settle)).To(Succeed()) }
}

// readyz is the status code and body of a health probe path of op, e.g.
// /readyz or /readyz/mirror (which says why it fails).
func readyz(g Gomega, op *testoperator.Operator, path string) (int, string) {
	resp, err := http.Get(op.ProbeURL + path) // #nosec G107 -- the loopback URL of the operator under test.
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}
