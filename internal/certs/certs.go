// Package certs keeps the HTTP API's serving certificate and its CA in the
// operator's namespace and serves the certificate from memory.
//
// Three objects, so that nothing reads a key it does not need:
//   - the CA's Secret (ca.crt, ca.key), which only the Rotator reads;
//   - the serving Secret (tls.crt, tls.key, ca.crt), which the HTTP API
//     reads to serve TLS;
//   - a ConfigMap holding ca.crt alone, which clients read to trust the
//     API (like kube-root-ca.crt): whoever sets up agents needs no Secret.
//
// A Rotator (in the controller manager, on the leader only) creates the
// self-signed CA and the serving certificate it signs, renews both before
// they expire, and publishes the CA certificate; with a serving Secret kept
// by another tool (cert-manager) it only publishes that Secret's ca.crt. A
// Source (in every HTTP API replica) watches the serving Secret through the
// API server and swaps the certificate the TLS server hands out, so a
// renewal needs no restart and nothing depends on a kubelet mounting files.
//
// Keys and certificates are made with crypto/x509 (ECDSA P-256): the few
// lines that need are clearer than a dependency built for webhook
// certificates that waits for files on disk.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Keys of the Secrets and the ConfigMap. The serving Secret holds tls.crt,
// tls.key and ca.crt, what cert-manager writes too, so a Source can serve a
// Secret cert-manager keeps. The CA's Secret holds ca.crt and ca.key and is
// read by the Rotator alone; clients read ca.crt from the ConfigMap, which
// holds no key.
const (
	CertKey   = corev1.TLSCertKey
	KeyKey    = corev1.TLSPrivateKeyKey
	CACertKey = "ca.crt"
	CAKeyKey  = "ca.key"
)

// Lifetimes of what the Rotator issues.
const (
	// DefaultCAValidity is long: clients trust the CA, and a new CA means
	// handing them ca.crt again.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultCertValidity is short: serving certificates are renewed by the
	// same CA, which clients already trust, so they notice nothing.
	DefaultCertValidity = 90 * 24 * time.Hour
	// backdate puts NotBefore in the past, for clients whose clock is a
	// little behind.
	backdate = 5 * time.Minute
)

// keyPair is a parsed certificate with its key and their PEM.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// newCA makes a self-signed CA valid from now for validity.
func newCA(name string, now time.Time, validity time.Duration) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s-ca@%d", name, now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return issue(tmpl, nil)
}

// newServing makes a serving certificate for names (DNS names or IP
// addresses) signed by ca, valid from now for validity but never beyond
// the CA.
func newServing(ca *keyPair, names []string, now time.Time, validity time.Duration) (*keyPair, error) {
	if len(names) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name or IP address")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return issue(tmpl, ca)
}

// issue makes a key and signs tmpl with parent (nil: self-signed).
func issue(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate a key: %w", err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return nil, fmt.Errorf("failed to draw a serial number: %w", err)
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("failed to sign a certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to encode a key: %w", err)
	}
	return parsePair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// parsePair parses a PEM certificate (the first of a chain) and its key
// and checks that they belong together.
func parsePair(certPEM, keyPEM []byte) (*keyPair, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New("missing")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("the key cannot sign")
	}
	return &keyPair{cert: pair.Leaf, key: key, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// renewAt is when c is renewed: after two thirds of its lifetime, as
// cert-manager does by default.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// plan is what must be issued anew.
type plan struct {
	ca, cert bool
	// reason says why, for the log.
	reason string
}

// planCA looks at the CA Secret's data at now: the CA is issued anew when
// it is missing, unreadable, not a CA or two thirds through its life.
func planCA(caData map[string][]byte, now time.Time) plan {
	ca, err := parsePair(caData[CACertKey], caData[CAKeyKey])
	switch {
	case err != nil:
		return plan{ca: true, cert: true, reason: "CA: " + err.Error()}
	case !ca.cert.IsCA:
		return plan{ca: true, cert: true, reason: "CA: not a CA certificate"}
	case !now.Before(renewAt(ca.cert)):
		return plan{ca: true, cert: true, reason: "CA: due for renewal"}
	}
	return plan{}
}

// planCert looks at the serving Secret's data at now: the serving
// certificate is issued anew when it is missing, unreadable, not signed by
// ca for server authentication, made for other names, or two thirds
// through its life.
func planCert(serving map[string][]byte, ca *keyPair, names []string, now time.Time) plan {
	leaf, err := parsePair(serving[CertKey], serving[KeyKey])
	if err != nil {
		return plan{cert: true, reason: "certificate: " + err.Error()}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := leaf.cert.Verify(x509.VerifyOptions{
		Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return plan{cert: true, reason: "certificate: " + err.Error()}
	}
	if !slices.Equal(certNames(leaf.cert), normalize(names)) {
		return plan{cert: true, reason: "certificate: made for other names"}
	}
	if !now.Before(renewAt(leaf.cert)) {
		return plan{cert: true, reason: "certificate: due for renewal"}
	}
	return plan{}
}

// nextRenewal is the earliest time the CA or the serving certificate is
// due; zero when either cannot be read.
func nextRenewal(caData, serving map[string][]byte) time.Time {
	ca, err := parsePair(caData[CACertKey], caData[CAKeyKey])
	if err != nil {
		return time.Time{}
	}
	leaf, err := parsePair(serving[CertKey], serving[KeyKey])
	if err != nil {
		return time.Time{}
	}
	if a, b := renewAt(ca.cert), renewAt(leaf.cert); a.Before(b) {
		return a
	}
	return renewAt(leaf.cert)
}

// certNames are the DNS names and IP addresses c is valid for, sorted.
func certNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return normalize(names)
}

func normalize(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ServiceNames are the DNS names of Service svc in namespace ns, as
// clients in the cluster write them.
func ServiceNames(svc, ns string) []string {
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}
