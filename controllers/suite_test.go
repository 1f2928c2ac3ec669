package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/testenv"
	"github.com/alertbridge/alertbridge/internal/testoperator"
)

// Timeouts for Eventually/Consistently, named so intent is visible.
const (
	settle   = 30 * time.Second
	poll     = 50 * time.Millisecond
	gcDelay  = 2 * time.Second
	quietFor = 2 * time.Second
)

var (
	env    *envtest.Environment
	cfg    *rest.Config
	scheme *runtime.Scheme
	// k8s is a direct client: assertions never read a cache.
	k8s client.Client
	ctx context.Context
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx = context.Background()
	var err error
	env, cfg, err = testenv.Start()
	Expect(err).NotTo(HaveOccurred())
	scheme = kube.NewScheme()
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// startOperator runs the real manager with every controller, as
// `alertbridge run` does, until the returned stop function is called.
func startOperator(opts controllers.Options) (stop func()) {
	GinkgoHelper()
	op, err := testoperator.Start(cfg, opts)
	Expect(err).NotTo(HaveOccurred())
	return func() { Expect(op.Stop(settle)).To(Succeed()) }
}

// newNamespace gives each spec its own namespace.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctl-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}
