package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/claim"
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
	env *testenv.Env
	// cfg is a cluster administrator, for setting up and asserting.
	cfg    *rest.Config
	scheme *runtime.Scheme
	// k8s is a direct client: assertions never read a cache.
	k8s client.Client
	// opK8s is a direct client acting as the operator: specs that run
	// without it write what it would have written as it.
	opK8s client.Client
	// adminUser is the user k8s authenticates as: the admission policies
	// judge its writes as anyone's, so what it writes in its own name
	// (a conversion's entries) names it.
	adminUser string
	ctx       context.Context
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx = context.Background()
	var err error
	// The specs run the operator with the mirror off, so the suite installs
	// config/without-mirror (the mirror's specs are controllers/mirror's).
	env, err = testenv.StartWith(testenv.WithoutMirrorInstall)
	Expect(err).NotTo(HaveOccurred())
	cfg = env.Admin
	scheme = kube.NewScheme()
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	opK8s, err = env.OperatorClient()
	Expect(err).NotTo(HaveOccurred())
	review := &authenticationv1.SelfSubjectReview{}
	Expect(k8s.Create(ctx, review)).To(Succeed())
	adminUser = review.Status.UserInfo.Username
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// startOperator runs the real manager with the controllers of opts, as
// `alertbridge run` does (as its ServiceAccount, under the shipped
// ClusterRole and admission policies), until stop is called. A spec names
// the controllers it tests (opts.Only), so a failure points at them and
// no other controller's work stands in for theirs; the shipped-binary
// tests (test/e2e) run every controller.
func startOperator(opts controllers.Options) (stop func()) {
	GinkgoHelper()
	Expect(opts.Only).NotTo(BeEmpty(), "name the controllers the spec tests in controllers.Options.Only")
	op, err := testoperator.Start(env.Operator, opts)
	Expect(err).NotTo(HaveOccurred())
	return func() { Expect(op.Stop(settle)).To(Succeed()) }
}

// agentsGroup is bound in each namespace that needs it to the shipped
// alertbridge-agent ClusterRole; oncallGroup to alertbridge-oncall.
const (
	agentsGroup = "alertbridge-tests:agents"
	oncallGroup = "alertbridge-tests:oncall"
)

// userIn is a client acting as user (through impersonation), a member of
// group, which is bound to clusterRole in ns.
func userIn(ns, user, group, clusterRole string) client.Client {
	GinkgoHelper()
	c, err := env.UserIn(ctx, ns, clusterRole, user, group)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// agent is a claimer acting as the agent user owner, bound in ns to the
// shipped alertbridge-agent role; it learns its user name from the API
// server, as the CLI does.
func agent(ns, owner string) *claim.Claimer {
	GinkgoHelper()
	return &claim.Claimer{Client: userIn(ns, owner, agentsGroup, "alertbridge-agent")}
}

// oncall is a claimer acting as the on-call user, bound in ns to the
// shipped alertbridge-oncall role.
func oncall(ns, user string) *claim.Claimer {
	GinkgoHelper()
	return &claim.Claimer{Client: userIn(ns, user, oncallGroup, "alertbridge-oncall")}
}

// grant lets the operator read the Secrets of ns (controllers.CredentialsRole)
// or run triage Jobs there (controllers.TriageJobsRole), as a namespace
// admin opting in does.
func grant(ns string, roles ...string) {
	GinkgoHelper()
	for _, role := range roles {
		Expect(env.Grant(ctx, ns, role)).To(Succeed())
	}
}
