package dashboard_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// TestPageAsksPermissionsInBatchesTheServerTakes: the page asks
// /v1/permissions for at most as many namespaces per call as the server
// reviews, so a dashboard of many namespaces still shows its buttons.
func TestPageAsksPermissionsInBatchesTheServerTakes(t *testing.T) {
	js, err := os.ReadFile("web/actions.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`const PERMS_BATCH = (\d+);`).FindSubmatch(js)
	if m == nil {
		t.Fatal("web/actions.js sets no PERMS_BATCH")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != base.MaxReviewedNamespaces {
		t.Fatalf("the page asks for %d namespaces per call, the server reviews at most %d", n, base.MaxReviewedNamespaces)
	}
}
