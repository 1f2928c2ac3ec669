package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// Named bounds for Eventually.
const (
	settle = 30 * time.Second
	poll   = 50 * time.Millisecond
)

var (
	env        *testenv.Env
	k8s        client.Client
	ctx        context.Context
	kubeconfig string
	// op is the operator, run as its ServiceAccount; the HTTP API specs
	// serve from its manager as `alertbridge run` does.
	op *testoperator.Operator
)

func TestCLI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "CLI suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx = context.Background()
	var err error
	// The CLI suite runs the operator with the mirror off, installed so.
	env, err = testenv.StartWith(testenv.WithoutMirrorInstall)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })
	restCfg := env.Admin

	scheme := kube.NewScheme()
	k8s, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// The CLI reads a kubeconfig like any user's: alice, an administrator.
	user, err := env.AddUser(envtest.User{Name: "alice", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	data, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, data, 0o600)).To(Succeed())

	op, err = testoperator.Start(env.Operator, controllers.Options{DuplicateGCDelay: time.Minute})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(op.Stop(settle)).To(Succeed()) })
})

// result is one in-process run of the alertbridge command.
type result struct {
	out, err string
	code     int
}

// run executes the CLI as `alertbridge --kubeconfig … args…` with stdin,
// as alice, an administrator.
func run(stdin string, args ...string) result { return runWith(kubeconfig, stdin, args...) }

// runWith executes the CLI with the kubeconfig kc.
func runWith(kc, stdin string, args ...string) result {
	root, app := cli.NewRoot()
	var out, errOut bytes.Buffer
	app.Out, app.Err = &out, &errOut
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--kubeconfig", kc}, args...))
	root.SetContext(ctx)
	code := cli.Execute(root)
	return result{out: out.String(), err: errOut.String(), code: code}
}
