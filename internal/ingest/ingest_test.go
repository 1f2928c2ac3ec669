package ingest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

func TestDecodeOneAndBatch(t *testing.T) {
	specs, errs := Decode([]byte(`{"service":"gateway","kind":"latency","title":"p95 above 300ms","severity":"p2",
		"labels":{"route":"/v1/chat"},"dedupe_ttl_minutes":45,"source":"monitor@node1"}`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s := specs[0]
	if s.Service != "gateway" || s.Severity != v1.SeverityP2 || s.DedupeTTL.Duration != 45*time.Minute || s.Labels["route"] != "/v1/chat" {
		t.Fatalf("decoded %+v", s)
	}
	specs, errs = Decode([]byte(`{"alerts":[{"service":"a","kind":"k","title":"t","dedupeTTL":"10m"},{"service":"b","kind":"k2","title":"t2","environment":"staging"}]}`))
	if len(errs) > 0 || len(specs) != 2 || specs[0].DedupeTTL.Duration != 10*time.Minute || specs[1].Env != "staging" {
		t.Fatalf("batch: %v %+v", errs, specs)
	}
}

func TestDecodeNamesTheField(t *testing.T) {
	cases := map[string]string{
		`{"kind":"latency","title":"x"}`:                                                 "service: Required value",
		`{"service":"Gateway","kind":"latency","title":"x"}`:                             "service: Invalid value",
		`{"service":"g","kind":"Latency","title":"x"}`:                                   "kind: Invalid value",
		`{"service":"g","kind":"l","title":"x","severity":"P9"}`:                         "severity: Unsupported value",
		`{"service":"g","kind":"l","title":"x","dedupe_ttl_minutes":"ten"}`:              "dedupe_ttl_minutes: Invalid value",
		`{"service":"g","kind":"l","title":"x","dedupeTTL":"0s"}`:                        "dedupeTTL: Invalid value",
		`{"service":"g","kind":"l","title":"x","colour":"red"}`:                          "colour: Unsupported value",
		`{"service":"g","kind":"l","title":"x","dedupeTTL":"1m","dedupe_ttl_minutes":1}`: "Duplicate value",
		`{"alerts":[{"service":"g","kind":"l","title":"x"},{"service":"g","kind":"l"}]}`: "alerts[1].title: Required value",
		`{"alerts":[]}`: "alerts: Required value",
		`[1,2]`:         "body: Invalid value",
		`{"service":"g","kind":"l","title":"x"} {}`:               "trailing data",
		`{"service":"g","kind":"l","title":"x","labels":{"a":1}}`: "labels: Invalid value",
	}
	for in, want := range cases {
		specs, errs := Decode([]byte(in))
		if len(errs) == 0 || specs != nil {
			t.Errorf("%s: accepted %+v", in, specs)
			continue
		}
		if got := errs.ToAggregate().Error(); !strings.Contains(got, want) {
			t.Errorf("%s: error %q does not contain %q", in, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"service":"gateway","kind":"latency","title":"p95 above 300ms"}`,
		`{"alerts":[{"service":"a","kind":"k","title":"t","dedupe_ttl_minutes":1.5,"labels":{"x":"y"}}]}`,
		`{"service":"g","kind":"l","title":"x","dedupeTTL":"1h30m","fingerprint":"abc:def"}`,
		`{"alerts":[null]}`, `null`, `{}`, `{"alerts":{}}`, `{"service":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, errs := Decode(data)
		if len(errs) > 0 {
			if specs != nil {
				t.Fatal("specs returned with errors")
			}
			return
		}
		if len(specs) == 0 {
			t.Fatal("no error and no specs")
		}
		// What Decode accepts survives a round trip through the Alert's
		// own JSON (the shape the API server stores) unchanged.
		for i := range specs {
			data, err := json.Marshal(&specs[i])
			if err != nil {
				t.Fatal(err)
			}
			again, errs := Decode(data)
			if len(errs) > 0 {
				t.Fatalf("accepted %s but refused its re-encoding: %v", data, errs)
			}
			if !equality.Semantic.DeepEqual(again[0], specs[i]) {
				t.Fatalf("round trip changed %+v into %+v", specs[i], again[0])
			}
		}
	})
}

// FuzzDecodeRequest checks what the HTTP handler adds to Decode: the batch
// flag that shapes the answer, and that a batch's specs re-encoded as a
// batch come back the same.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"service":"gateway","kind":"latency","title":"p95 above 300ms"}`,
		`{"alerts":[{"service":"a","kind":"k","title":"t"}]}`,
		`{"alerts":[{"service":"a","kind":"k","title":"t"},{"service":"b","kind":"k","title":"t","severity":"p1"}]}`,
		`{"ALERTS":[]}`, `{"alerts":null}`, `{"alerts":[],"x":1}`, `[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, batch, errs := DecodeRequest(data)
		plain, plainErrs := Decode(data)
		if len(errs) != len(plainErrs) || !equality.Semantic.DeepEqual(specs, plain) {
			t.Fatalf("DecodeRequest and Decode disagree: %v %v / %v %v", specs, errs, plain, plainErrs)
		}
		if len(errs) > 0 {
			if batch || specs != nil {
				t.Fatal("a refused body is neither a batch nor has specs")
			}
			return
		}
		if !batch && len(specs) != 1 {
			t.Fatalf("a single alert decoded into %d specs", len(specs))
		}
		if !batch {
			return
		}
		again, err := json.Marshal(map[string]any{"alerts": specs})
		if err != nil {
			t.Fatal(err)
		}
		specs2, batch2, errs2 := DecodeRequest(again)
		if len(errs2) > 0 || !batch2 || !equality.Semantic.DeepEqual(specs2, specs) {
			t.Fatalf("batch round trip: %s -> %v %v %v", again, specs2, batch2, errs2)
		}
	})
}
