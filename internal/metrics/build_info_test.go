package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/version"
)

// TestBuildInfo: /metrics says which build runs, as
// alertbridge_build_info{version,commit,goversion} 1.
func TestBuildInfo(t *testing.T) {
	v := version.Get()
	want := `
# HELP alertbridge_build_info Always 1; labelled with the version, commit and Go version of the running binary.
# TYPE alertbridge_build_info gauge
alertbridge_build_info{commit="` + v.Commit + `",goversion="` + v.GoVersion + `",version="` + v.Version + `"} 1
`
	if err := testutil.CollectAndCompare(metrics.BuildInfo, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
