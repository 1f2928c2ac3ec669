package fingerprint

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestComputeIsStableAndOrderIndependent(t *testing.T) {
	a := Compute("gateway", "prod", "latency", map[string]string{"route": "/v1/chat", "host": "n1"})
	b := Compute("gateway", "prod", "latency", map[string]string{"host": "n1", "route": "/v1/chat"})
	if a != b {
		t.Fatalf("label order changed the fingerprint: %s != %s", a, b)
	}
	if len(a) != hexLen {
		t.Fatalf("fingerprint %q has length %d, want %d", a, len(a), hexLen)
	}
	if got := Compute("gateway", "", "latency", map[string]string{"route": "/v1/chat", "host": "n1"}); got != a {
		t.Fatalf("empty env must mean %q", DefaultEnv)
	}
}

func TestComputeDistinguishesInputs(t *testing.T) {
	cases := []struct {
		name               string
		service, env, kind string
		labels             map[string]string
	}{
		{"base", "gateway", "prod", "latency", nil},
		{"service", "gateway2", "prod", "latency", nil},
		{"env", "gateway", "staging", "latency", nil},
		{"kind", "gateway", "prod", "error_rate", nil},
		{"label", "gateway", "prod", "latency", map[string]string{"route": "a"}},
		{"label value", "gateway", "prod", "latency", map[string]string{"route": "b"}},
		// Concatenation ambiguity: "ab"+"c" must differ from "a"+"bc".
		{"shifted boundary 1", "gatewa", "yprod", "latency", nil},
		{"shifted labels 1", "gateway", "prod", "latency", map[string]string{"ro": "utea"}},
		{"shifted labels 2", "gateway", "prod", "latency", map[string]string{"rout": "ea"}},
	}
	seen := map[string]string{}
	for _, c := range cases {
		fp := Compute(c.service, c.env, c.kind, c.labels)
		if prev, ok := seen[fp]; ok {
			t.Fatalf("%s and %s share fingerprint %s", prev, c.name, fp)
		}
		seen[fp] = c.name
	}
}

func TestEffectivePrefersOverride(t *testing.T) {
	if got := Effective("my-fp", "gateway", "prod", "latency", nil); got != "my-fp" {
		t.Fatalf("override ignored: %s", got)
	}
	if got := Effective("", "gateway", "prod", "latency", nil); got != Compute("gateway", "prod", "latency", nil) {
		t.Fatalf("default not computed: %s", got)
	}
}

func TestLabelValue(t *testing.T) {
	cases := map[string]bool{ // input → kept as is
		"3f9c0a":                     true,
		"gateway-latency":            true,
		"a/b":                        false,
		strings.Repeat("x", 64):      false,
		"prom:alertname:HighLatency": false,
	}
	for in, kept := range cases {
		got := LabelValue(in)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Fatalf("LabelValue(%q) = %q is not a label value: %v", in, got, errs)
		}
		if (got == in) != kept {
			t.Fatalf("LabelValue(%q) = %q, kept=%v want %v", in, got, got == in, kept)
		}
	}
}

func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", "a", "a/b", strings.Repeat("z", 80), "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if errs := validation.IsValidLabelValue(LabelValue(s)); len(errs) > 0 {
			t.Fatalf("LabelValue(%q) not label-safe: %v", s, errs)
		}
	})
}
