package intake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// holder is a Holder of one certificate.
type holder struct{ cert *tls.Certificate }

func (h holder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return h.cert, nil }
func (h holder) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return h.cert, nil
}
func (h holder) Holds(leaf []byte) bool { return string(leaf) == string(h.cert.Certificate[0]) }

func newHolder(t *testing.T) holder {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alertbridge-api.alertbridge-system.svc"},
		DNSNames:  []string{"alertbridge-api.alertbridge-system.svc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return holder{&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// serve runs a peer port for h that answers 204 to whoever gets through
// the handshake.
func serve(t *testing.T, h Holder) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server, _ := PeerTLS(h)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		TLSConfig:         server,
		ReadHeaderTimeout: time.Second,
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// TestPeersProveTheyHoldTheCertificate: the peer port takes occurrences
// only from a replica holding the HTTP API's certificate, and a replica
// sends them only to one — a certificate signed by the same CA, or any
// other, is not enough.
func TestPeersProveTheyHoldTheCertificate(t *testing.T) {
	ours, other := newHolder(t), newHolder(t)
	addr := serve(t, ours)
	for _, c := range []struct {
		name   string
		client Holder
		wantOK bool
	}{
		{"a replica", ours, true},
		{"someone with another certificate", other, false},
	} {
		_, clientTLS := PeerTLS(c.client)
		resp, err := NewPeerClient(clientTLS).Get("https://" + addr + PeerPath)
		if err == nil {
			_ = resp.Body.Close()
		}
		if ok := err == nil && resp.StatusCode == http.StatusNoContent; ok != c.wantOK {
			t.Errorf("%s: got through %v, want %v (err %v)", c.name, ok, c.wantOK, err)
		}
	}
	// A listener that is not a replica is not sent occurrences.
	_, clientTLS := PeerTLS(ours)
	if _, err := NewPeerClient(clientTLS).Get("https://" + serve(t, other) + PeerPath); err == nil || !strings.Contains(err.Error(), errNotAPeer.Error()) {
		t.Errorf("a replica sent to a port that is not a peer's: %v", err)
	}
}

// TestPeerErrorsKeepTheirMeaning: the replica a sender talks to answers a
// forwarded occurrence exactly as the owner would have.
func TestPeerErrorsKeepTheirMeaning(t *testing.T) {
	quota := apierrors.NewForbidden(schema.GroupResource{Group: "ops.alertbridge.io", Resource: "alerts"}, "x", errors.New("exceeded quota: alerts"))
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "ops.alertbridge.io", Kind: "Alert"}, "x", nil)
	for _, c := range []struct {
		in    error
		check func(error) bool
	}{
		{nil, func(err error) bool { return err == nil }},
		{ErrBusy, func(err error) bool { return errors.Is(err, ErrBusy) }},
		{quota, func(err error) bool {
			return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota")
		}},
		{invalid, apierrors.IsInvalid},
		{errors.New("etcd is down"), func(err error) bool { return err != nil && err.Error() == "etcd is down" }},
	} {
		if got := encodeError(c.in).err(); !c.check(got) {
			t.Errorf("%v came back as %v", c.in, got)
		}
	}
}

func TestAddressOfIdentity(t *testing.T) {
	e := &Elector{Name: "alertbridge-api-7d9f-abc", Address: "10.0.0.7:8091"}
	if got := addressOf(e.identity()); got != e.Address {
		t.Errorf("addressOf(%q) = %q", e.identity(), got)
	}
	if got := addressOf("someone-else"); got != "" {
		t.Errorf("a foreign holder identity gave address %q", got)
	}
}
