package certs

import (
	"maps"
	"testing"
	"time"
)

var testNames = []string{"alertbridge-api", "alertbridge-api.alertbridge-system.svc"}

// issued is what a Rotator writes at now: the CA's data and the serving
// Secret's.
func issued(t *testing.T, now time.Time, names []string) (caData, serving map[string][]byte) {
	t.Helper()
	ca, err := newCA("x", now, DefaultCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	serving, err = (&Rotator{Names: names}).issueServing(ca, now)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{CACertKey: ca.certPEM, CAKeyKey: ca.keyPEM}, serving
}

// with is d with the keys of kv (key, value or nil to delete) changed.
func with(d map[string][]byte, kv ...any) map[string][]byte {
	d = maps.Clone(d)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(d, kv[i].(string))
		} else {
			d[kv[i].(string)] = kv[i+1].([]byte)
		}
	}
	return d
}

func TestPlanCA(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	fresh, serving := issued(t, now, testNames)
	other, _ := issued(t, now, testNames)
	caLife := DefaultCAValidity + backdate
	for _, tc := range []struct {
		name string
		data map[string][]byte
		at   time.Time
		want bool
	}{
		{"empty", nil, now, true},
		{"fresh", fresh, now, false},
		{"just before two thirds of its life", fresh, now.Add(caLife*2/3 - backdate - time.Minute), false},
		{"two thirds of its life", fresh, now.Add(caLife*2/3 - backdate), true},
		{"no key", with(fresh, CAKeyKey, nil), now, true},
		{"key of another CA", with(fresh, CAKeyKey, other[CAKeyKey]), now, true},
		{"garbage", with(fresh, CACertKey, []byte("not PEM")), now, true},
		{"not a CA", map[string][]byte{CACertKey: serving[CertKey], CAKeyKey: serving[KeyKey]}, now, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planCA(tc.data, tc.at)
			if p.ca != tc.want || p.cert != tc.want {
				t.Fatalf("plan %+v, want a new CA and certificate: %v", p, tc.want)
			}
			if p.ca && p.reason == "" {
				t.Fatal("a renewal without a reason")
			}
		})
	}
}

func TestPlanCert(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	caData, fresh := issued(t, now, testNames)
	_, other := issued(t, now, testNames)
	ca, err := parsePair(caData[CACertKey], caData[CAKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := newServing(ca, []string{"elsewhere"}, now, DefaultCertValidity)
	if err != nil {
		t.Fatal(err)
	}
	certLife := DefaultCertValidity + backdate
	for _, tc := range []struct {
		name  string
		data  map[string][]byte
		names []string
		at    time.Time
		want  bool
	}{
		{"empty", nil, testNames, now, true},
		{"fresh", fresh, testNames, now, false},
		{"names in another order", fresh, []string{testNames[1], testNames[0], testNames[1]}, now, false},
		{"just before two thirds of its life", fresh, testNames, now.Add(certLife*2/3 - backdate - time.Minute), false},
		{"two thirds of its life", fresh, testNames, now.Add(certLife*2/3 - backdate), true},
		{"no key", with(fresh, KeyKey, nil), testNames, now, true},
		{"key of another certificate", with(fresh, KeyKey, other[KeyKey]), testNames, now, true},
		{"signed by another CA", with(fresh, CertKey, other[CertKey], KeyKey, other[KeyKey]), testNames, now, true},
		{"other names", with(fresh, CertKey, elsewhere.certPEM, KeyKey, elsewhere.keyPEM), testNames, now, true},
		{"expired", fresh, testNames, now.Add(DefaultCertValidity + time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planCert(tc.data, ca, tc.names, tc.at)
			if p.ca || p.cert != tc.want {
				t.Fatalf("plan %+v, want a new certificate: %v (and never a new CA)", p, tc.want)
			}
			if p.cert && p.reason == "" {
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
	if p := planCert(map[string][]byte{CertKey: leaf.certPEM, KeyKey: leaf.keyPEM}, ca,
		[]string{"::1", "a", "127.0.0.1"}, now); p.ca || p.cert {
		t.Fatalf("fresh pair with IPs: %+v", p)
	}
	if _, err := newServing(ca, nil, now, time.Hour); err == nil {
		t.Fatal("a serving certificate without names")
	}
}

func TestNextRenewal(t *testing.T) {
	now := time.Now()
	caData, serving := issued(t, now, testNames)
	leaf, err := parsePair(serving[CertKey], serving[KeyKey])
	if err != nil {
		t.Fatal(err)
	}
	if got := nextRenewal(caData, serving); !got.Equal(renewAt(leaf.cert)) {
		t.Fatalf("next renewal %s, want the serving certificate's %s", got, renewAt(leaf.cert))
	}
	if got := nextRenewal(caData, map[string][]byte{}); !got.IsZero() {
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
