package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

var (
	// k8s and cfg are a cluster administrator's, for setting up and asserting.
	k8s client.Client
	// opK8s and opCS are the controller manager's (its ServiceAccount under
	// the shipped ClusterRole): specs write as it what only it writes.
	opK8s client.Client
	opCS  kubernetes.Interface
	// apiCS is the HTTP API's (its own ServiceAccount under its shipped
	// ClusterRole): the Authenticators under test review with it.
	apiCS kubernetes.Interface
	env   *testenv.Env
)

// TestMain runs the API against a real kube-apiserver, whose authenticator
// answers TokenReview and whose RBAC answers SubjectAccessReview.
func TestMain(m *testing.M) {
	var err error
	// Most tests run the operator with the mirror off, installed so; the
	// mirror test adds the finalizer component (testenv.InstallMirrorFinalizer).
	env, err = testenv.StartWith(testenv.WithoutMirrorInstall)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = env.Admin
	code := func() int {
		s := kube.NewScheme()
		if k8s, err = client.New(cfg, client.Options{Scheme: s}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if opK8s, err = client.New(env.Operator, client.Options{Scheme: s}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if opCS, err = kubernetes.NewForConfig(env.Operator); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if apiCS, err = kubernetes.NewForConfig(env.API); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	_ = env.Stop()
	os.Exit(code)
}

type fixture struct {
	ns      string
	allowed string // token of a ServiceAccount that may get slopolicies
	denied  string // token of one that may not
}

func setup(t testing.TB) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{ns: testbuild.Namespace(gomega.NewWithT(t), k8s, "api-")}
	must(t, k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "gate-reader", Namespace: f.ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"ops.alertbridge.io"}, Resources: []string{"slopolicies"}, Verbs: []string{"get"}}},
	}))
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "gate-reader", Namespace: f.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "gate-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "rollouts", Namespace: f.ns}},
	}))
	f.allowed = token(t, f.ns, "rollouts")
	f.denied = token(t, f.ns, "stranger")
	return f
}

// token creates ServiceAccount sa and mints a token of it bound to the
// audience the API accepts by default, as `kubectl create token sa
// --audience alertbridge` does.
func token(t testing.TB, ns, sa string) string {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}))
	return tokenFor(t, ns, sa, base.DefaultAudience)
}

// tokenFor mints a token of an existing ServiceAccount for audiences; with
// none it is a token of the API server's own audience.
func tokenFor(t testing.TB, ns, sa string, audiences ...string) string {
	t.Helper()
	tr, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	must(t, err)
	return tr.Status.Token
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func policy(t testing.TB, ns, name string, d v1.GateDecision, reason string, evaluatedAgo time.Duration) {
	t.Helper()
	ctx := context.Background()
	p := testbuild.MakeSLOPolicy(name, ns).Service(name).Env("staging").EvaluationInterval(15 * time.Second).Obj()
	must(t, k8s.Create(ctx, p))
	at := metav1.NewTime(time.Now().Add(-evaluatedAgo))
	p.Status.LastEvaluatedAt = &at
	p.Status.Gate = &v1.GateStatus{Decision: d, Reason: reason, Since: &at}
	p.Status.Observed = &v1.ObservedSLIs{LatencyP95Ms: "975"}
	must(t, k8s.Status().Update(ctx, p))
}

func call(t *testing.T, srv *httptest.Server, method, path, tok string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, srv.URL+path, nil)
	must(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	var body map[string]any
	must(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// newServer is the HTTP API as `alertbridge serve` sets it up, on a manager
// of its own as the API's ServiceAccount, served by httptest.
func newServer(t testing.TB, anonymous bool) *httptest.Server {
	t.Helper()
	api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: httpapi.Config{GateAnonymous: anonymous}})
	must(t, err)
	srv := httptest.NewServer(api.Server.Handler())
	t.Cleanup(func() {
		srv.Close()
		must(t, api.Stop(time.Minute))
	})
	return srv
}

// authenticated serves auth in front of a handler that answers 200 with
// {}, on the release gate's route with its access rule. The specs that
// use it measure the Authenticator itself (its caches, limits, audiences
// and failures), with settings no flag reaches or an API server that is
// down, so the rest of the server is left out.
func authenticated(t testing.TB, auth *base.Authenticator) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(httpapi.GatePath, auth.Require(httpapi.GateAccess(false), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestGateAuth(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	srv := newServer(t, false)
	path := "/v1/gates/" + f.ns + "/gateway"

	if code, body := call(t, srv, http.MethodGet, path, ""); code != http.StatusUnauthorized || body["message"] == nil {
		t.Fatalf("no token: %d %v", code, body)
	}
	if code, _ := call(t, srv, http.MethodGet, path, "not-a-token"); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}
	if code, body := call(t, srv, http.MethodGet, path, f.denied); code != http.StatusForbidden || body["code"] != float64(403) {
		t.Fatalf("token without the verb: %d %v", code, body)
	}
	code, body := call(t, srv, http.MethodGet, path, f.allowed)
	if code != http.StatusOK || body["allowed"] != true || body["decision"] != "Allow" {
		t.Fatalf("allowed token: %d %v", code, body)
	}
	if code, _ := call(t, srv, http.MethodGet, "/v1/gates/"+f.ns+"/missing", f.allowed); code != http.StatusNotFound {
		t.Fatalf("missing policy: %d", code)
	}
	if code, body := call(t, srv, http.MethodGet, "/v1/nowhere", ""); code != http.StatusNotFound || body["code"] != float64(404) {
		t.Fatalf("unknown path: %d %v", code, body)
	}
	// The token is authorised per namespace.
	other := setup(t)
	if code, _ := call(t, srv, http.MethodGet, "/v1/gates/"+other.ns+"/gateway", f.allowed); code != http.StatusForbidden {
		t.Fatalf("other namespace: %d", code)
	}
}

func TestGateFormats(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "open", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	policy(t, f.ns, "breached", v1.DecisionBlock, v1.ReasonLatencyP95Exceeded, time.Second)
	policy(t, f.ns, "warned", v1.DecisionWarn, v1.ReasonErrorRateExceeded, time.Second)
	policy(t, f.ns, "stale", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Minute)
	srv := newServer(t, true)
	cases := []struct {
		policy, method, format string
		code                   int
		allowed                bool
		reason                 string
	}{
		{"open", http.MethodGet, "", 200, true, v1.ReasonWithinObjectives},
		{"breached", http.MethodGet, "", 200, false, v1.ReasonLatencyP95Exceeded},
		{"open", http.MethodPost, "flagger", 200, true, v1.ReasonWithinObjectives},
		{"breached", http.MethodPost, "flagger", 403, false, v1.ReasonLatencyP95Exceeded},
		{"warned", http.MethodPost, "flagger", 200, true, v1.ReasonErrorRateExceeded},
		{"stale", http.MethodPost, "flagger", 403, false, v1.ReasonStale},
		{"stale", http.MethodGet, "", 200, false, v1.ReasonStale},
	}
	for _, tc := range cases {
		path := "/v1/gates/" + f.ns + "/" + tc.policy
		if tc.format != "" {
			path += "?format=" + tc.format
		}
		// Anonymous: Flagger sends no token.
		code, body := call(t, srv, tc.method, path, "")
		if code != tc.code || body["allowed"] != tc.allowed || body["reason"] != tc.reason {
			t.Errorf("%s %s: %d %v, want %d allowed=%v %s", tc.method, path, code, body, tc.code, tc.allowed, tc.reason)
		}
	}
	// Anonymous access does not let a bad token through.
	if code, _ := call(t, srv, http.MethodGet, "/v1/gates/"+f.ns+"/open", "not-a-token"); code != http.StatusUnauthorized {
		t.Fatalf("bad token with anonymous on: %d", code)
	}
	if code, body := call(t, srv, http.MethodGet, "/v1/gates/"+f.ns+"/open", f.allowed); code != 200 || body["observed"] == nil {
		t.Fatalf("observed missing: %d %v", code, body)
	}
}

// TestStartServes runs the server as the manager does: on a real listener,
// over plain HTTP and TLS, until its context ends.
func TestStartServes(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionBlock, v1.ReasonLatencyP95Exceeded, time.Second)
	certFile, keyFile, pool := selfSigned(t)
	for _, tc := range []struct {
		name   string
		cfg    httpapi.Config
		scheme string
		client *http.Client
	}{
		{"http", httpapi.Config{Insecure: true}, "http", http.DefaultClient},
		{"tls", httpapi.Config{CertFile: certFile, KeyFile: keyFile}, "https", &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			tc.cfg.Addr = l.Addr().String()
			must(t, l.Close())
			api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: tc.cfg})
			must(t, err)
			ctx := context.Background()

			url := tc.scheme + "://" + tc.cfg.Addr + "/v1/gates/" + f.ns + "/gateway?format=flagger"
			deadline := time.Now().Add(serveTimeout)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
				req.Header.Set("Authorization", "Bearer "+f.allowed)
				resp, err := tc.client.Do(req)
				if err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusForbidden {
						t.Fatalf("blocked gate over Start: %d, want 403", resp.StatusCode)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("server never answered: %v", err)
				}
				<-tick.C
			}
			must(t, api.Stop(serveTimeout))
		})
	}
}

const serveTimeout = 10 * time.Second

// selfSigned writes a certificate for 127.0.0.1 and returns its files and
// a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "alertbridge-test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile, pool
}
