package v1alpha1_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// These specs run against the API server alone, with no operator: they
// prove that validation and the phase machine live in the CRD itself.
var (
	env *testenv.Env
	k8s client.Client
	ctx context.Context
)

func TestAPI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API validation suite")
}

var _ = BeforeSuite(func() {
	// Logs go to the spec's output, which Ginkgo shows for a failed spec
	// (and controller-runtime stops warning that no logger is set).
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx = context.Background()
	var err error
	env, err = testenv.Start()
	Expect(err).NotTo(HaveOccurred())
	restCfg := env.Admin
	scheme := kube.NewScheme()
	k8s, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
