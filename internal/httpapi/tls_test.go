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
	"net/http/httptest"
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
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/testbuild"
	"github.com/alertbridge/alertbridge/internal/testoperator"
)

// apiTLSSecret is the Secret config/manager serves and config/rbac lets
// the operator keep (internal/certs checks that they agree).
const apiTLSSecret = "alertbridge-api-tls"

// shippedAPI is the HTTP API as `alertbridge run` serves it: the real
// operator; the certificate kept in the shipped Secret by the operator's
// Rotator and Source (its ServiceAccount under the shipped Role); TLS; the
// default audience; a real listener.
type shippedAPI struct {
	srv *httpapi.Server
	// addr is where it listens (127.0.0.1), url its base URL there.
	addr, url string
	// host is the Service's DNS name, which the certificate is for.
	host string
	// stop tells the server to stop, as the manager does on SIGTERM.
	stop context.CancelFunc
	done chan error
	// wait says whether Start returned in time, and what.
	wait func() (returned bool, err error)
}

func startShipped(t testing.TB, cfg httpapi.Config) *shippedAPI {
	t.Helper()
	quietLogs.Do(func() { logf.SetLogger(logr.Discard()) })
	op, err := testoperator.Start(env.Operator, controllers.Options{DuplicateGCDelay: time.Second})
	must(t, err)
	t.Cleanup(func() { must(t, op.Stop(settle)) })
	mgr := op.Manager
	ns := env.Install.Namespace
	src, err := certs.Add(mgr, opCS, certs.Options{
		Secret: types.NamespacedName{Namespace: ns, Name: apiTLSSecret},
		Names:  certs.ServiceNames("alertbridge-api", ns), Manage: true,
	})
	must(t, err)
	cfg.Addr = "127.0.0.1:" + freePort(t)
	cfg.GetCertificate = src.GetCertificate
	cfg.Intake = &intake.Intake{Client: mgr.GetClient(), Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{}}
	if cfg.DefaultNamespace == "" {
		cfg.DefaultNamespace = "default"
	}
	s := httpapi.New(cfg, mgr.GetClient(), &httpapi.Authenticator{Client: opCS}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	api := &shippedAPI{srv: s, addr: cfg.Addr, url: "https://" + cfg.Addr, host: "alertbridge-api." + ns + ".svc", stop: cancel, done: make(chan error, 1)}
	go func() { api.done <- s.Start(ctx) }()
	var once sync.Once
	var startErr error
	var returned bool
	api.wait = func() (bool, error) {
		once.Do(func() {
			select {
			case startErr = <-api.done:
				returned = true
			case <-time.After(settle):
			}
		})
		return returned, startErr
	}
	t.Cleanup(func() {
		cancel()
		if ok, _ := api.wait(); !ok {
			t.Error("the HTTP API did not stop")
		}
	})
	gomega.NewWithT(t).Eventually(func() error {
		if err := src.Ready(nil); err != nil {
			return err
		}
		return s.ReadyCheck(nil)
	}, settle, poll).Should(gomega.Succeed())
	return api
}

// caPool is what a client trusts after `kubectl get secret alertbridge-api-tls
// -o jsonpath='{.data.ca\.crt}'`.
func caPool(t testing.TB) (*x509.CertPool, []byte) {
	t.Helper()
	pool, ca, err := readCA()
	must(t, err)
	return pool, ca
}

func readCA() (*x509.CertPool, []byte, error) {
	var s corev1.Secret
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: env.Install.Namespace, Name: apiTLSSecret}, &s); err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data[certs.CACertKey]) {
		return nil, nil, fmt.Errorf("no CA in Secret %s", apiTLSSecret)
	}
	return pool, s.Data[certs.CACertKey], nil
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

// TestServesTLSFromSecret: the API serves the certificate the operator
// keeps in its Secret, for the Service's name, to clients trusting the
// Secret's ca.crt; when the certificate changes (here the Secret is
// deleted, so a new CA is made) the running server serves the new one.
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

	// A new CA and certificate, served without a restart.
	must(t, k8s.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: env.Install.Namespace, Name: apiTLSSecret}}))
	gomega.NewWithT(t).Eventually(func() error {
		pool, ca, err := readCA()
		if err != nil {
			return err
		}
		if string(ca) == string(oldCA) {
			return errors.New("the Secret has not been made again yet")
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

// TestStartNeedsACertificate: plain HTTP is served only when asked for.
func TestStartNeedsACertificate(t *testing.T) {
	s := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0"}, opK8s, &httpapi.Authenticator{Client: opCS}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
	defer cancel()
	if err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "--api-insecure") {
		t.Fatalf("Start without a certificate: %v, want an error naming --api-insecure", err)
	}
	if s.ReadyCheck(nil) == nil {
		t.Fatal("a server that did not start is ready")
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
	both := tokenFor(t, f.ns, "rollouts", "elsewhere", httpapi.DefaultAudience)

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
	other := httptest.NewServer(httpapi.New(httpapi.Config{}, opK8s, &httpapi.Authenticator{Client: opCS, Audiences: []string{"elsewhere"}}, nil).Handler())
	t.Cleanup(other.Close)
	if code, _ := call(t, other, http.MethodGet, path, f.allowed); code != http.StatusUnauthorized {
		t.Errorf("alertbridge token with --api-audiences=elsewhere: %d", code)
	}
	if code, _ := call(t, other, http.MethodGet, path, elsewhere); code != http.StatusOK {
		t.Errorf("elsewhere token with --api-audiences=elsewhere: %d", code)
	}
	// Adding the API server's audience (the OIDC setting in the README)
	// lets its tokens in too.
	withAPI := httptest.NewServer(httpapi.New(httpapi.Config{}, opK8s, &httpapi.Authenticator{
		Client: opCS, Audiences: append([]string{httpapi.DefaultAudience}, apiAudiences...),
	}, nil).Handler())
	t.Cleanup(withAPI.Close)
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
