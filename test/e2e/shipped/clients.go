package shipped

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// userTokenLifetime outlasts any run.
const userTokenLifetime = 24 * time.Hour

// User is a ServiceAccount bound in its namespace to one of the shipped
// ClusterRoles (alertbridge-monitor, -agent, -oncall, -viewer), as the
// roles table (docs/roles.md) tells people to bind their agents and monitors.
type User struct {
	Namespace, Name string
	// Username is the Kubernetes user name.
	Username string
	// Config authenticates with a TokenRequest token (the API server's
	// audience) and the command line's client limits.
	Config *rest.Config
	// Kubeconfig is a file holding Config, for bin/alertbridge.
	Kubeconfig string

	env *Env
}

// User creates ServiceAccount name in ns, binds clusterRole to it in ns,
// and returns once the API server's authorizer knows the binding.
func (e *Env) User(ctx context.Context, ns, name, clusterRole string) (*User, error) {
	for _, obj := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-" + clusterRole, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		},
	} {
		if err := e.Admin.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("failed to create %T %s/%s: %w", obj, ns, obj.GetName(), err)
		}
	}
	u := &User{Namespace: ns, Name: name, Username: serviceaccount.MakeUsername(ns, name), env: e}
	if err := e.waitBound(ctx, u, clusterRole); err != nil {
		return nil, err
	}
	tok, err := u.Token(ctx, "")
	if err != nil {
		return nil, err
	}
	u.Config = rest.AnonymousClientConfig(e.Control.Admin)
	u.Config.BearerToken = tok
	kube.WithCLILimits(u.Config)
	kc, err := testenv.Kubeconfig(u.Config, name)
	if err != nil {
		return nil, err
	}
	u.Kubeconfig = filepath.Join(e.Dir, fmt.Sprintf("user-%s-%s.kubeconfig", ns, name))
	if err := os.WriteFile(u.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	return u, nil
}

// waitBound returns once a SubjectAccessReview for u allows the first rule
// of clusterRole: the RBAC authorizer learns of bindings through informers.
func (e *Env) waitBound(ctx context.Context, u *User, clusterRole string) error {
	var role rbacv1.ClusterRole
	if err := e.Admin.Get(ctx, client.ObjectKey{Name: clusterRole}, &role); err != nil {
		return fmt.Errorf("failed to read ClusterRole %s: %w", clusterRole, err)
	}
	if len(role.Rules) == 0 || len(role.Rules[0].Verbs) == 0 || len(role.Rules[0].Resources) == 0 {
		return fmt.Errorf("ClusterRole %s has no rule to wait for", clusterRole)
	}
	rule := role.Rules[0]
	attrs := &authorizationv1.ResourceAttributes{Namespace: u.Namespace, Verb: rule.Verbs[0], Resource: rule.Resources[0]}
	if len(rule.APIGroups) > 0 {
		attrs.Group = rule.APIGroups[0]
	}
	groups := append(serviceaccount.MakeGroupNames(u.Namespace), "system:authenticated")
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, Groups: groups, ResourceAttributes: attrs,
		}}
		if err := e.Admin.Create(ctx, sar); err != nil {
			return false, err
		}
		return sar.Status.Allowed, nil
	})
}

// Token mints a token for u bound to audience ("" is the API server's own,
// base.DefaultAudience is what the HTTP API accepts).
func (u *User) Token(ctx context.Context, audience string) (string, error) {
	cs, err := kubernetes.NewForConfig(u.env.Control.Admin)
	if err != nil {
		return "", err
	}
	spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(userTokenLifetime.Seconds()))}
	if audience != "" {
		spec.Audiences = []string{audience}
	}
	tr, err := cs.CoreV1().ServiceAccounts(u.Namespace).CreateToken(ctx, u.Name, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("failed to request a token for %s: %w", u.Username, err)
	}
	return tr.Status.Token, nil
}

// APIToken is a token the HTTP API accepts (audience alertbridge).
func (u *User) APIToken(ctx context.Context) (string, error) {
	return u.Token(ctx, base.DefaultAudience)
}

// Client is a client of u's own (its own connection and rate limiter).
func (u *User) Client() (client.Client, error) {
	return client.New(rest.CopyConfig(u.Config), client.Options{Scheme: kube.NewScheme()})
}

// APIServerName is the name the HTTP API's certificate is for and clients
// verify: the Service alertbridge-api in the operator's namespace.
func (e *Env) APIServerName() string {
	svc, _ := flagValue(e.ManagerContainer().Args, "--api-tls-service")
	if svc == "" {
		svc = "alertbridge-api"
	}
	return svc + "." + e.Namespace() + ".svc"
}

// APITLS is the TLS configuration of an HTTP API client: the CA from the
// ConfigMap the operator publishes (key ca.crt, no key beside it), read as
// an ordinary authenticated user may read it — as docs/agents.md tells
// clients to fetch it — and the Service's name to verify.
func (e *Env) APITLS(ctx context.Context) (*tls.Config, error) {
	name, _ := flagValue(e.ManagerContainer().Args, "--api-ca-configmap")
	if name == "" {
		name = "alertbridge-api-ca"
	}
	c, err := client.New(e.Control.As("agent-installer@example.com"), client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	err = wait.ExponentialBackoffWithContext(ctx, RetryBackoff, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: e.Namespace(), Name: name}, &cm)
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read the HTTP API's CA from ConfigMap %s: %w", name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cm.Data["ca.crt"])) {
		return nil, errors.New("the ConfigMap " + name + " holds no ca.crt")
	}
	return &tls.Config{RootCAs: pool, ServerName: e.APIServerName(), MinVersion: tls.VersionTLS12}, nil
}

// APIClient is an HTTP client of the HTTP API with its own connections, as
// one sender (a monitor, an Alertmanager) would have.
func (e *Env) APIClient(ctx context.Context) (*http.Client, error) {
	cfg, err := e.APITLS(ctx)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 4}}, nil
}

// APIURLs are the HTTP API's base URLs, one per replica: what a Service
// would spread connections over.
func (e *Env) APIURLs() []string {
	out := make([]string, 0, len(e.APIReplicas))
	for _, r := range e.APIReplicas {
		out = append(out, r.APIURL)
	}
	return out
}

// RetryBackoff is how patiently a client of the harness retries what
// Transient accepts: 13 retries over about 40 s, which outlasts the API
// server's own slow moments on a loaded 2-core machine. It has no Cap:
// reaching one ends a wait.Backoff's steps at once.
var RetryBackoff = wait.Backoff{Duration: 100 * time.Millisecond, Factor: 1.5, Jitter: 0.1, Steps: 14}

// Transient says the API server refused a request for a reason of its own,
// which a client retries: a server timeout or overload, or an admission
// policy that could not be evaluated (its failurePolicy is Fail, e.g. when
// looking up its parameter timed out on a loaded machine). A refused
// create made nothing, so retrying it cannot make a second object.
func Transient(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		(apierrors.IsForbidden(err) && strings.Contains(err.Error(), "failed to configure binding"))
}
