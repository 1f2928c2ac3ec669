package httpapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// The certificate's objects config/manager names and config/rbac lets the
// manager keep (internal/certs checks that they agree).
const (
	apiTLSSecret   = "alertbridge-api-tls"
	apiCASecret    = "alertbridge-api-ca"
	apiCAConfigMap = "alertbridge-api-ca"
)

// shippedAPI is the HTTP API as shipped: `alertbridge serve`'s wiring
// (internal/serve) as the HTTP API's ServiceAccount, serving over TLS, on a
// real listener, the certificate that the real operator (`alertbridge
// run`, as the manager's ServiceAccount under the shipped Role) keeps.
type shippedAPI struct {
	srv *httpapi.Server
	// addr is where it listens (127.0.0.1), url its base URL there.
	addr, url string
	// host is the Service's DNS name, which the certificate is for.
	host string
	// stop tells the API to stop, as SIGTERM does.
	stop func()
	// wait says whether it stopped in time, and with what.
	wait func() (returned bool, err error)
}

func startShipped(t testing.TB, cfg httpapi.Config) *shippedAPI {
	t.Helper()
	quietLogs.Do(func() { logf.SetLogger(logr.Discard()) })
	ns := env.Install.Namespace
	op, err := testoperator.Start(env.Operator, controllers.Options{DuplicateGCDelay: time.Second},
		testoperator.WithCertificates(certs.Options{
			Secret:      types.NamespacedName{Namespace: ns, Name: apiTLSSecret},
			CASecret:    types.NamespacedName{Namespace: ns, Name: apiCASecret},
			CAConfigMap: types.NamespacedName{Namespace: ns, Name: apiCAConfigMap},
			Names:       certs.ServiceNames("alertbridge-api", ns), Manage: true,
		}))
	must(t, err)
	t.Cleanup(func() { must(t, op.Stop(settle)) })
	cfg.Addr = "127.0.0.1:" + freePort(t)
	if cfg.DefaultNamespace == "" {
		cfg.DefaultNamespace = "default"
	}
	api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: cfg, TLSSecret: types.NamespacedName{Namespace: ns, Name: apiTLSSecret}})
	must(t, err)
	shipped := &shippedAPI{srv: api.Server, addr: cfg.Addr, url: "https://" + cfg.Addr, host: "alertbridge-api." + ns + ".svc", stop: api.Cancel}
	var once sync.Once
	var stopErr error
	var returned bool
	shipped.wait = func() (bool, error) {
		once.Do(func() {
			stopErr = api.Wait(settle)
			returned = stopErr == nil || !strings.Contains(stopErr.Error(), "did not stop within")
		})
		return returned, stopErr
	}
	t.Cleanup(func() {
		api.Cancel()
		if ok, _ := shipped.wait(); !ok {
			t.Error("the HTTP API did not stop")
		}
	})
	// Ready once a client trusting the published CA completes a request.
	gomega.NewWithT(t).Eventually(func() error {
		pool, _, err := readCA()
		if err != nil {
			return err
		}
		resp, err := tlsClient(pool, shipped.host).Get(shipped.url + "/openapi.json")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}, settle, poll).Should(gomega.Succeed())
	return shipped
}

// caPool is what a client trusts after `kubectl get configmap
// alertbridge-api-ca -o jsonpath='{.data.ca\.crt}'`.
func caPool(t testing.TB) (*x509.CertPool, []byte) {
	t.Helper()
	pool, ca, err := readCA()
	must(t, err)
	return pool, ca
}

// readCA reads the published CA certificate as an ordinary authenticated
// user would: the ConfigMap holds no key, and anyone signed in may read it.
func readCA() (*x509.CertPool, []byte, error) {
	c, err := client.New(env.As("agent-installer@example.com"), client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		return nil, nil, err
	}
	var cm corev1.ConfigMap
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: env.Install.Namespace, Name: apiCAConfigMap}, &cm); err != nil {
		return nil, nil, err
	}
	ca := []byte(cm.Data[certs.CACertKey])
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, nil, fmt.Errorf("no CA in ConfigMap %s", apiCAConfigMap)
	}
	return pool, ca, nil
}

// tlsClient trusts pool and expects the server to be serverName; each request
// opens a new connection.
func tlsClient(pool *x509.CertPool, serverName string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}
}

func gateStatus(c *http.Client, url, tok string) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// TestServesTLSFromSecret: the API serves the certificate the manager
// keeps in its Secret, for the Service's name, to clients trusting the
// CA certificate published in the ConfigMap; a new serving certificate
// (the Secret deleted) is served without a restart and clients keep
// trusting it; a new CA (its Secret deleted) is published, and the server
// serves a certificate of it.
func TestServesTLSFromSecret(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionBlock, v1.ReasonLatencyP95Exceeded, time.Second)
	api := startShipped(t, httpapi.Config{})
	url := api.url + "/v1/gates/" + f.ns + "/gateway?format=flagger"
	pool, oldCA := caPool(t)
	if code, err := gateStatus(tlsClient(pool, api.host), url, f.allowed); err != nil || code != http.StatusForbidden {
		t.Fatalf("blocked gate over TLS: %d %v, want 403", code, err)
	}
	for name, c := range map[string]*http.Client{
		"a client without the CA":      tlsClient(nil, api.host),
		"a client expecting elsewhere": tlsClient(pool, "elsewhere.example"),
	} {
		if _, err := gateStatus(c, url, f.allowed); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%s: %v, want a certificate error", name, err)
		}
	}
	served := func() string {
		conn, err := tls.Dial("tcp", api.addr, &tls.Config{RootCAs: pool, ServerName: api.host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: true})
		if err != nil {
			return err.Error()
		}
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := served()

	// A new serving certificate of the same CA: served at once, trusted by
	// the clients that already hold the CA.
	must(t, k8s.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: env.Install.Namespace, Name: apiTLSSecret}}))
	gomega.NewWithT(t).Eventually(served, settle, poll).ShouldNot(gomega.Equal(first))
	if code, err := gateStatus(tlsClient(pool, api.host), url, f.allowed); err != nil || code != http.StatusForbidden {
		t.Fatalf("with the same CA after a new certificate: %d %v", code, err)
	}

	// A new CA: published, and the server's certificate is of it.
	must(t, k8s.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: env.Install.Namespace, Name: apiCASecret}}))
	gomega.NewWithT(t).Eventually(func() error {
		pool, ca, err := readCA()
		if err != nil {
			return err
		}
		if string(ca) == string(oldCA) {
			return errors.New("no new CA published yet")
		}
		if code, err := gateStatus(tlsClient(pool, api.host), url, f.allowed); err != nil || code != http.StatusForbidden {
			return fmt.Errorf("with the new CA: %d %v", code, err)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())
	if _, err := gateStatus(tlsClient(pool, api.host), url, f.allowed); err == nil {
		t.Fatal("the old CA is still trusted: the server did not take the new certificate")
	}
}

// TestStartNeedsACertificate: plain HTTP is served only when asked for; the
// API is not even set up without a certificate.
func TestStartNeedsACertificate(t *testing.T) {
	_, err := testoperator.StartAPI(env.API, serve.Options{HTTP: httpapi.Config{Addr: "127.0.0.1:0"}})
	if err == nil || !strings.Contains(err.Error(), "the HTTP API has no certificate") || !strings.Contains(err.Error(), "--api-insecure") {
		t.Fatalf("set up without a certificate: %v, want an error saying it has none and naming the flags", err)
	}
}

// TestTokenAudience: only tokens bound to an audience the API accepts get
// in. A token of the API server's own audience (plain `kubectl create
// token`, a pod's default token) gets 401, so no token sent here works
// against the API server.
func TestTokenAudience(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	path := "/v1/gates/" + f.ns + "/gateway"
	tr, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ServiceAccounts(f.ns).CreateToken(context.Background(), "rollouts", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	must(t, err)
	apiServers, apiAudiences := tr.Status.Token, tr.Spec.Audiences
	if len(apiAudiences) == 0 {
		t.Fatal("the API server did not say its own audiences")
	}
	elsewhere := tokenFor(t, f.ns, "rollouts", "elsewhere")
	both := tokenFor(t, f.ns, "rollouts", "elsewhere", base.DefaultAudience)

	byDefault := newServer(t, false)
	for _, tc := range []struct {
		name string
		tok  string
		code int
	}{
		{"the API server's audience", apiServers, http.StatusUnauthorized},
		{"another audience", elsewhere, http.StatusUnauthorized},
		{"audience alertbridge", f.allowed, http.StatusOK},
		{"alertbridge among others", both, http.StatusOK},
	} {
		code, body := call(t, byDefault, http.MethodGet, path, tc.tok)
		if code != tc.code {
			t.Errorf("%s: %d %v, want %d", tc.name, code, body, tc.code)
		}
		if code == http.StatusUnauthorized && !strings.Contains(fmt.Sprint(body["message"]), "--audience alertbridge") {
			t.Errorf("%s: the 401 does not say how to get a token: %v", tc.name, body)
		}
	}

	// --api-audiences=elsewhere: now only that audience.
	other := authenticated(t, &base.Authenticator{Client: apiCS, Audiences: []string{"elsewhere"}})
	if code, _ := call(t, other, http.MethodGet, path, f.allowed); code != http.StatusUnauthorized {
		t.Errorf("alertbridge token with --api-audiences=elsewhere: %d", code)
	}
	if code, _ := call(t, other, http.MethodGet, path, elsewhere); code != http.StatusOK {
		t.Errorf("elsewhere token with --api-audiences=elsewhere: %d", code)
	}
	// Adding the API server's audience (the OIDC setting of docs/agents.md)
	// lets its tokens in too.
	withAPI := authenticated(t, &base.Authenticator{
		Client: apiCS, Audiences: append([]string{base.DefaultAudience}, apiAudiences...),
	})
	for name, tok := range map[string]string{"the API server's audience": apiServers, "audience alertbridge": f.allowed} {
		if code, _ := call(t, withAPI, http.MethodGet, path, tok); code != http.StatusOK {
			t.Errorf("%s with the API server's audience added: %d", name, code)
		}
	}
}

// TestGracefulShutdown: told to stop (SIGTERM), the server fails readiness
// at once, a request in flight completes with 200 and is stored (its
// context is not cancelled), new connections are refused, and Start
// returns cleanly once the request is done.
func TestGracefulShutdown(t *testing.T) {
	api := startShipped(t, httpapi.Config{ShutdownDelay: time.Second})
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	tok := monitorToken(t, ns)
	pool, _ := caPool(t)

	// A slow request: headers now, body later. The server answers "100
	// Continue" when the handler starts reading the body, past TokenReview
	// and SubjectAccessReview: the request is then in the handler.
	body, write := io.Pipe()
	inHandler := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got100Continue: func() { close(inHandler) }})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.url+"/v1/alerts?namespace="+ns, body)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	slow := &http.Client{Transport: &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: pool, ServerName: api.host, MinVersion: tls.VersionTLS12},
		ExpectContinueTimeout: settle,
	}}
	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := slow.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{code: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-inHandler:
	case a := <-answered:
		t.Fatalf("the slow request ended before its body was sent: %+v", a)
	case <-time.After(settle):
		t.Fatal("the slow request never reached the handler")
	}

	api.stop()
	gomega.NewWithT(t).Eventually(func() error {
		if api.srv.ReadyCheck(nil) == nil {
			return errors.New("still ready after being told to stop")
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())
	// After the delay the listener closes: new connections are refused
	// while the slow request is still in flight.
	gomega.NewWithT(t).Eventually(func() error {
		c, err := net.Dial("tcp", api.addr)
		if err != nil {
			return nil // refused: what we wait for
		}
		_ = c.Close()
		return errors.New("still accepting connections")
	}, settle, poll).Should(gomega.Succeed())
	select {
	case a := <-answered:
		t.Fatalf("the slow request ended before its body was sent: %+v", a)
	default:
	}
	_, err = write.Write([]byte(oneAlert))
	must(t, err)
	must(t, write.Close())
	select {
	case a := <-answered:
		if a.err != nil || a.code != http.StatusOK || !strings.Contains(a.body, `"accepted":true`) {
			t.Fatalf("the request in flight during shutdown: %d %s %v", a.code, a.body, a.err)
		}
	case <-time.After(settle):
		t.Fatal("the request in flight never got its answer")
	}
	ok, err := api.wait()
	if !ok {
		t.Fatal("the server did not stop after its last request")
	}
	must(t, err)
	if as := alerts(t, ns); len(as) != 1 {
		t.Fatalf("%d Alerts stored, want the one sent during shutdown", len(as))
	}
	if _, err := net.Dial("tcp", api.addr); err == nil {
		t.Fatal("a stopped server accepts connections")
	}
}
