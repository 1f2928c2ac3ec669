package certs

import (
	"maps"
	"testing"
	"time"
)

var testNames = []string{"alertbridge-api", "alertbridge-api.alertbridge-system.svc"}

// secretData is what a Rotator writes at now.
func secretData(t *testing.T, now time.Time, names []string) map[string][]byte {
	t.Helper()
	r := &Rotator{Names: names}
	data, err := r.issue(nil, plan{ca: true, cert: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestPlanFor(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	fresh := secretData(t, now, testNames)
	other := secretData(t, now, testNames)
	with := func(kv ...any) map[string][]byte {
		d := maps.Clone(fresh)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(d, kv[i].(string))
			} else {
				d[kv[i].(string)] = kv[i+1].([]byte)
			}
		}
		return d
	}
	// A serving certificate of the fresh CA for other names.
	ca, err := parsePair(fresh[CACertKey], fresh[CAKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := newServing(ca, []string{"elsewhere"}, now, DefaultCertValidity)
	if err != nil {
		t.Fatal(err)
	}
	certLife, caLife := DefaultCertValidity+backdate, DefaultCAValidity+backdate
	for _, tc := range []struct {
		name     string
		data     map[string][]byte
		at       time.Time
		ca, cert bool
	}{
		{"empty", nil, now, true, true},
		{"fresh", fresh, now, false, false},
		{"names in another order", fresh, now, false, false},
		{"just before two thirds of the certificate's life", fresh, now.Add(certLife*2/3 - backdate - time.Minute), false, false},
		{"two thirds of the certificate's life", fresh, now.Add(certLife*2/3 - backdate), false, true},
		{"two thirds of the CA's life", fresh, now.Add(caLife*2/3 - backdate), true, true},
		{"no CA key", with(CAKeyKey, nil), now, true, true},
		{"CA key of another CA", with(CAKeyKey, other[CAKeyKey]), now, true, true},
		{"garbage CA", with(CACertKey, []byte("not PEM")), now, true, true},
		{"serving certificate is the CA", with(CACertKey, fresh[CertKey], CAKeyKey, fresh[KeyKey]), now, true, true},
		{"no serving key", with(KeyKey, nil), now, false, true},
		{"serving key of another certificate", with(KeyKey, other[KeyKey]), now, false, true},
		{"signed by another CA", with(CertKey, other[CertKey], KeyKey, other[KeyKey]), now, false, true},
		{"other names", with(CertKey, elsewhere.certPEM, KeyKey, elsewhere.keyPEM), now, false, true},
		{"expired", fresh, now.Add(DefaultCertValidity + time.Hour), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := testNames
			if tc.name == "names in another order" {
				names = []string{testNames[1], testNames[0], testNames[1]}
			}
			p := planFor(tc.data, names, tc.at)
			if p.ca != tc.ca || p.cert != tc.cert {
				t.Fatalf("plan %+v, want ca=%v cert=%v", p, tc.ca, tc.cert)
			}
			if (p.ca || p.cert) && p.reason == "" {
				t.Fatal("a renewal without a reason")
			}
		})
	}
}

func TestServingNeverOutlivesItsCA(t *testing.T) {
	now := time.Now()
	ca, err := newCA("x", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := newServing(ca, []string{"a", "127.0.0.1", "::1"}, now, DefaultCertValidity)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.cert.NotAfter.Equal(ca.cert.NotAfter) {
		t.Fatalf("serving certificate until %s, CA until %s", leaf.cert.NotAfter, ca.cert.NotAfter)
	}
	if len(leaf.cert.DNSNames) != 1 || len(leaf.cert.IPAddresses) != 2 {
		t.Fatalf("names %v, IPs %v", leaf.cert.DNSNames, leaf.cert.IPAddresses)
	}
	if p := planFor(map[string][]byte{CACertKey: ca.certPEM, CAKeyKey: ca.keyPEM, CertKey: leaf.certPEM, KeyKey: leaf.keyPEM},
		[]string{"::1", "a", "127.0.0.1"}, now); p.ca || p.cert {
		t.Fatalf("fresh pair with IPs: %+v", p)
	}
	if _, err := newServing(ca, nil, now, time.Hour); err == nil {
		t.Fatal("a serving certificate without names")
	}
}

func TestNextRenewal(t *testing.T) {
	now := time.Now()
	data := secretData(t, now, testNames)
	leaf, err := parsePair(data[CertKey], data[KeyKey])
	if err != nil {
		t.Fatal(err)
	}
	if got := nextRenewal(data); !got.Equal(renewAt(leaf.cert)) {
		t.Fatalf("next renewal %s, want the serving certificate's %s", got, renewAt(leaf.cert))
	}
	if got := nextRenewal(map[string][]byte{}); !got.IsZero() {
		t.Fatalf("next renewal of nothing: %s", got)
	}
}

func TestServiceNames(t *testing.T) {
	got := ServiceNames("alertbridge-api", "ops")
	want := []string{"alertbridge-api", "alertbridge-api.ops", "alertbridge-api.ops.svc", "alertbridge-api.ops.svc.cluster.local"}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
}
