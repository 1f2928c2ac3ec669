package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

const module = "github.com/alertbridge/alertbridge"

// TestImportGraph keeps the mirror on its own: package controllers holds
// the reconcilers of Alerts, Incidents and SLOPolicies and never reaches the
// mirror's; the mirror's reconcilers never reach package controllers; and
// internal/mirror stays a library of the database, with no reconcilers.
// Only the wiring (internal/operator) knows both. The HTTP API's wiring
// (internal/serve, which `alertbridge serve` runs as its own
// ServiceAccount) reaches no reconciler: the process open to the network
// runs none. It reads the import graph as `go list -deps` prints it (tests
// excluded: they may start the whole operator).
func TestImportGraph(t *testing.T) {
	imports := importGraph(t, "./controllers/...", "./internal/mirror", "./internal/operator", "./internal/serve")
	for _, c := range []struct {
		pkg       string
		forbidden []string
	}{
		{"controllers", []string{"controllers/mirror", "internal/operator", "test/integration/testoperator"}},
		{"controllers/mirror", []string{"controllers", "internal/operator", "test/integration/testoperator"}},
		{"internal/mirror", []string{"controllers", "controllers/mirror", "internal/operator", "test/integration/testoperator"}},
		{"internal/serve", []string{"controllers", "controllers/mirror", "internal/operator", "test/integration/testoperator"}},
		{"internal/httpapi", []string{"controllers", "controllers/mirror", "internal/operator", "test/integration/testoperator"}},
	} {
		if _, ok := imports[module+"/"+c.pkg]; !ok {
			t.Errorf("go list did not list %s", c.pkg)
		}
		for _, f := range c.forbidden {
			if path := pathTo(imports, module+"/"+c.pkg, module+"/"+f); path != nil {
				t.Errorf("%s must not depend on %s, but imports it through %s", c.pkg, f, strings.Join(path, " → "))
			}
		}
	}
	// The wiring does reach both; else the check above proves nothing.
	for _, p := range []string{"controllers", "controllers/mirror"} {
		if pathTo(imports, module+"/internal/operator", module+"/"+p) == nil {
			t.Errorf("internal/operator does not reach %s: is the graph read right?", p)
		}
	}
}

// TestImportGraphOfHTTPAPI keeps the HTTP API's jobs apart: the dashboard
// and read endpoints, ingest and the Alertmanager receiver, the work queue,
// and the agent protocols (MCP, the tool endpoint) are each a package that
// imports none of the others, and what they share (package base) imports
// none of them, nor the server that mounts them. Only the server
// (internal/httpapi) knows every job, and hands the agent protocols the
// work queue's, the reads' and the intake's actions.
func TestImportGraphOfHTTPAPI(t *testing.T) {
	const api = "internal/httpapi"
	jobs := []string{api + "/agents", api + "/dashboard", api + "/ingestapi", api + "/work"}
	imports := importGraph(t, "./"+api+"/...")
	type rule struct {
		pkg       string
		forbidden []string
	}
	rules := []rule{{api + "/base", append([]string{api}, jobs...)}}
	for _, job := range jobs {
		others := slices.DeleteFunc(slices.Clone(jobs), func(j string) bool { return j == job })
		rules = append(rules, rule{job, append([]string{api}, others...)})
	}
	for _, c := range rules {
		if _, ok := imports[module+"/"+c.pkg]; !ok {
			t.Errorf("go list did not list %s", c.pkg)
		}
		for _, f := range c.forbidden {
			if path := pathTo(imports, module+"/"+c.pkg, module+"/"+f); path != nil {
				t.Errorf("%s must not depend on %s, but imports it through %s", c.pkg, f, strings.Join(path, " → "))
			}
		}
	}
	// The server does reach every job and base; else the checks above prove nothing.
	for _, p := range append(jobs, api+"/base") {
		if pathTo(imports, module+"/"+api, module+"/"+p) == nil {
			t.Errorf("%s does not reach %s: is the graph read right?", api, p)
		}
	}
}

// TestNoHarnessShips keeps what ships apart from what tests it: no package
// the binary or another program could import (everything outside test/
// and hack/) reaches a test harness, a test framework or envtest, and
// every harness lives under test/.
func TestNoHarnessShips(t *testing.T) {
	imports := importGraph(t, ".", "./api/...", "./controllers/...", "./internal/...")
	harness := []string{"testing", "github.com/onsi/ginkgo/v2", "github.com/onsi/gomega", "sigs.k8s.io/controller-runtime/pkg/envtest"}
	for pkg := range imports {
		if !strings.HasPrefix(pkg, module) {
			continue
		}
		if strings.HasPrefix(pkg, module+"/test/") {
			t.Errorf("%s is a test harness but a shipped package imports it", strings.TrimPrefix(pkg, module+"/"))
			continue
		}
		for _, h := range harness {
			if path := pathTo(imports, pkg, h); path != nil {
				t.Errorf("%s reaches %s through %s: move the harness under test/", strings.TrimPrefix(pkg, module+"/"), h, strings.Join(path, " → "))
			}
		}
	}
	if pathTo(imports, module+"/internal/operator", module+"/controllers") == nil {
		t.Error("internal/operator does not reach controllers: is the graph read right?")
	}
}

// importGraph is each package's direct imports, for patterns and
// everything they depend on.
func importGraph(t *testing.T, patterns ...string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json=ImportPath,Imports"}, patterns...)...) // #nosec G204 -- fixed arguments.
	cmd.Dir = testenv.Root()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		graph[p.ImportPath] = p.Imports
	}
	return graph
}

// pathTo is a shortest chain of imports from one package to another, nil
// when there is none.
func pathTo(graph map[string][]string, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var path []string
			for ; p != ""; p = prev[p] {
				path = append(path, strings.TrimPrefix(p, module+"/"))
			}
			slices.Reverse(path)
			return path
		}
		for _, next := range graph[p] {
			if _, seen := prev[next]; !seen {
				prev[next] = p
				queue = append(queue, next)
			}
		}
	}
	return nil
}
