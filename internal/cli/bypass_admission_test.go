package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// admissionSettle bounds how long the API server takes to enforce a new
// ValidatingAdmissionPolicy.
const admissionSettle = 30 * time.Second

// as is a client acting as user.
func as(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: gateK8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bypassPatch(by, reason string, until time.Time) client.Patch {
	return client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"`+
		v1.BypassByAnnotation+`":"`+by+`","`+v1.BypassReasonAnnotation+`":"`+reason+`","`+
		v1.BypassUntilAnnotation+`":"`+until.UTC().Format(time.RFC3339)+`"}}}`))
}

// TestBypassByIsTheCaller proves the shipped admission policy: nobody can
// write a bypass in someone else's name, while `slo bypass` works and other
// edits leave a standing bypass alone.
func TestBypassByIsTheCaller(t *testing.T) {
	gateEnv(t)
	ctx := context.Background()
	// The policy is the one config/default installs (testenv installs it).
	ns := testbuild.Namespace(gomega.NewWithT(t), gateK8s, "cli-")
	p := policy(t, ns, "gateway", v1.GateStrict)
	for _, o := range []client.Object{
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "oncall", Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"ops.alertbridge.io"}, Resources: []string{"slopolicies"}, Verbs: []string{"get", "list", "patch", "update"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "oncall", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "oncall"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: "mallory"}, {Kind: "User", Name: "bob"}},
		},
	} {
		if err := gateK8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	mallory := as(t, "mallory")
	target := func() *v1.SLOPolicy { return &v1.SLOPolicy{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns}} }

	// Until the new policy is enforced a dry run may pass; each try asks
	// for a different until so it is always a change.
	deadline := time.Now().Add(admissionSettle)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var err error
	for i := 1; ; i++ {
		err = mallory.Patch(ctx, target(), bypassPatch("alice", "forged", time.Now().Add(time.Duration(i)*time.Minute)), client.DryRunAll)
		if err != nil || time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "bypass-by] must name you (mallory)") {
		t.Fatalf("a bypass in alice's name by mallory: %v", err)
	}

	// The CLI writes the caller, so it passes.
	if code, _, errOut := runGateCLI(t, ns, "--as", "mallory", "slo", "bypass", "gateway", "--for", "1h", "--reason", "INC-9"); code != cli.ExitOK {
		t.Fatalf("slo bypass as mallory: exit %d, %s", code, errOut)
	}
	var got v1.SLOPolicy
	if err := gateK8s.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations[v1.BypassByAnnotation] != "mallory" {
		t.Fatalf("bypass-by %q, want mallory", got.Annotations[v1.BypassByAnnotation])
	}

	// bob may edit the policy while mallory's bypass stands...
	bob := as(t, "bob")
	spec := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"evaluationInterval":"30s"}}`))
	if err := bob.Patch(ctx, target(), spec); err != nil {
		t.Fatalf("an unrelated edit under someone else's bypass: %v", err)
	}
	// ...but not extend it in her name.
	if err := bob.Patch(ctx, target(), bypassPatch("mallory", "INC-9", time.Now().Add(2*time.Hour))); err == nil {
		t.Fatal("bob extended mallory's bypass in her name")
	}
}
