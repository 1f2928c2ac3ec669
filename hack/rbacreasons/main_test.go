package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// m is an RBAC marker line; the constant is split so controller-gen does
// not read these test lines as markers (it skips _test.go files anyway).
func m(args string) string { return markerPrefix + args }

func TestParseTakesTheCommentAboveEachMarker(t *testing.T) {
	src := strings.Join([]string{
		"package x",
		"",
		"// Doc of the block, then a blank comment line.",
		"//",
		"// The controller reads Alerts,",
		"// over two lines.",
		m("groups=ops.alertbridge.io,resources=alerts;incidents,verbs=get;list"),
		"// Events for users.",
		m(`groups="",resources=events,verbs=create`),
		"",
		m("groups=batch,resources=jobs,verbs=create"),
		"// Reason of a marker that follows another marker directly:",
		m("groups=batch,resources=jobs,verbs=get"),
		m("groups=batch,resources=cronjobs,verbs=get"),
	}, "\n")
	ms, errs := parse("x.go", []byte(src))
	if len(ms) != 3 {
		t.Fatalf("markers = %+v, want 3", ms)
	}
	if ms[0].reason != "The controller reads Alerts, over two lines." || ms[0].line != 7 {
		t.Errorf("first marker: %+v", ms[0])
	}
	if strings.Join(ms[0].resources, ",") != "alerts,incidents" || strings.Join(ms[0].verbs, ",") != "get,list" {
		t.Errorf("first marker: %+v", ms[0])
	}
	if ms[1].reason != "Events for users." || ms[1].groups[0] != "" {
		t.Errorf("second marker: %+v", ms[1])
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "x.go:11: the RBAC marker has no reason") ||
		!strings.Contains(errs[1].Error(), "x.go:14: the RBAC marker has no reason") {
		t.Errorf("errors = %v, want the two markers without a reason, by line", errs)
	}
}

const generated = `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: alertbridge-manager
rules:
- apiGroups:
  - ""
  resources:
  - configmaps
  verbs:
  - create
- apiGroups:
  - ops.alertbridge.io
  resources:
  - alerts
  - incidents
  verbs:
  - get
  - list
`

func TestAnnotate(t *testing.T) {
	markers := []marker{
		{file: "a.go", line: 1, groups: []string{""}, resources: []string{"configmaps"}, verbs: []string{"create"}, reason: "Postmortems."},
		{file: "b.go", line: 2, groups: []string{"ops.alertbridge.io"}, resources: []string{"alerts", "incidents"}, verbs: []string{"get", "list"}, reason: "Reads both."},
		{file: "c.go", line: 3, groups: []string{"ops.alertbridge.io"}, resources: []string{"alerts"}, verbs: []string{"get"}, reason: "Reads Alerts."},
	}
	out, err := annotate([]byte(generated), markers)
	if err != nil {
		t.Fatal(err)
	}
	want := header + strings.Replace(strings.Replace(generated,
		"rules:\n- apiGroups:\n  - \"\"", "rules:\n# create: Postmortems. (a.go)\n- apiGroups:\n  - \"\"", 1),
		"  - create\n- apiGroups:", "  - create\n# get, list: Reads both. (b.go)\n# get alerts: Reads Alerts. (c.go)\n- apiGroups:", 1)
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	again, err := annotate(out, markers)
	if err != nil || string(again) != want {
		t.Fatalf("annotating again changed the role (err %v):\n%s", err, again)
	}
}

func TestAnnotateRefusesARoleAndMarkersThatDisagree(t *testing.T) {
	markers := []marker{
		{file: "a.go", line: 1, groups: []string{""}, resources: []string{"configmaps"}, verbs: []string{"create", "delete"}, reason: "Postmortems."},
	}
	_, err := annotate([]byte(generated), markers)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		`a.go:1 grants " configmaps delete", which the role lacks`,
		`the role grants "ops.alertbridge.io alerts get", which no RBAC marker asks for`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestShippedRolesAreAnnotated: the ClusterRoles of the controller
// manager (config/rbac/role.yaml) and of the HTTP API
// (config/rbac/api/role.yaml) are what `make manifests` writes from the
// markers of their packages, run from the module root as make does.
func TestShippedRolesAreAnnotated(t *testing.T) {
	t.Chdir(filepath.Join("..", ".."))
	for role, dirs := range map[string][]string{
		filepath.Join("config", "rbac", "role.yaml"):        {"controllers"},
		filepath.Join("config", "rbac", "api", "role.yaml"): {filepath.Join("internal", "httpapi"), filepath.Join("internal", "intake")},
	} {
		var markers []marker
		for _, d := range dirs {
			ms, err := scan(d)
			if err != nil {
				t.Fatal(err)
			}
			markers = append(markers, ms...)
		}
		data, err := os.ReadFile(role)
		if err != nil {
			t.Fatal(err)
		}
		out, err := annotate(data, markers)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		if string(out) != string(data) {
			t.Errorf("%s is stale: run `make manifests`", role)
		}
	}
}
