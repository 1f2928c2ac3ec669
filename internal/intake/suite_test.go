package intake_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

const (
	settle = 60 * time.Second
	poll   = 100 * time.Millisecond
)

var (
	env    *testenv.Env
	cfg    *rest.Config
	scheme *runtime.Scheme
	k8s    client.Client
	ctx    context.Context
)

func TestIntake(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Intake suite")
}

var _ = BeforeSuite(func() {
	// Logs go to the spec's output, which Ginkgo shows for a failed spec
	// (and controller-runtime stops warning that no logger is set).
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx = context.Background()
	var err error
	// The operator runs with the mirror off, installed so.
	env, err = testenv.StartWith(testenv.WithoutMirrorInstall)
	Expect(err).NotTo(HaveOccurred())
	cfg = env.Admin
	scheme = kube.NewScheme()
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// writeCounter counts the API writes an Intake makes.
type writeCounter struct{ n atomic.Int64 }

type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	panic("not used")
}

// startIntake runs the operator and returns an Intake wired to its cache,
// as `alertbridge run` wires it.
func startIntake(writes *writeCounter) (*intake.Intake, func()) {
	op, err := testoperator.Start(env.Operator, controllers.Options{DuplicateGCDelay: time.Second, AlertConcurrency: 4})
	Expect(err).NotTo(HaveOccurred())
	mgr := op.Manager
	writer := interceptor.NewClient(noWatch{mgr.GetClient()}, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			writes.n.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			writes.n.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			writes.n.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	in := &intake.Intake{Client: writer, Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{}}
	return in, func() { Expect(op.Stop(settle)).To(Succeed()) }
}

// replicaIntake is the intake of a second operator replica that is not the
// leader: its own cache (with the fingerprint index), no controllers.
func replicaIntake() *intake.Intake {
	GinkgoHelper()
	mgr, err := ctrl.NewManager(env.Operator, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	mctx, cancel := context.WithCancel(ctx)
	DeferCleanup(cancel)
	Expect(fingerprint.RegisterIndex(mctx, mgr.GetFieldIndexer())).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(mctx)).To(Succeed())
	}()
	Expect(mgr.GetCache().WaitForCacheSync(mctx)).To(BeTrue())
	return &intake.Intake{Client: mgr.GetClient(), Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{}}
}
