package main

import (
	"go/ast"
	"go/types"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// alertWriter is the file that holds the one writer of Alert status.
const alertWriter = "internal/alertstate/write.go"

// TestOneAlertStatusWriter keeps every write of an Alert's status on one
// path (alertstate.Writer), so that one conflict policy governs them all:
// no shipped package may call a status subresource's Create, Update, Patch
// or Apply with an Alert, or with an object whose type it cannot tell
// (client.Object), except the writer itself. It reads the type-checked
// source, so neither an import alias nor a client kept in a variable hides
// a call.
func TestOneAlertStatusWriter(t *testing.T) {
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	inWriter := 0
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Errorf("%s: %v", p.PkgPath, e)
		}
		if strings.HasPrefix(p.PkgPath, module+"/test/") || strings.HasPrefix(p.PkgPath, module+"/hack/") {
			continue // harnesses set up fixtures as an administrator would
		}
		for _, f := range p.Syntax {
			file, _ := filepath.Rel(root, p.Fset.File(f.Pos()).Name())
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || !statusWrite(p.TypesInfo, call) {
					return true
				}
				obj := p.TypesInfo.TypeOf(call.Args[1])
				if !isAlert(obj) && !types.IsInterface(obj) {
					return true
				}
				if filepath.ToSlash(file) == alertWriter {
					inWriter++
					return true
				}
				t.Errorf("%s: writes the status of %s outside %s: use alertstate.Writer",
					p.Fset.Position(call.Pos()), types.TypeString(obj, nil), alertWriter)
				return true
			})
		}
	}
	if inWriter == 0 {
		t.Errorf("found no status write in %s: is the source read right?", alertWriter)
	}
}

// statusWrite reports whether call is a write through a subresource client
// (client.Status() or client.SubResource(name)).
func statusWrite(info *types.Info, call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || len(call.Args) < 2 {
		return false
	}
	switch sel.Sel.Name {
	case "Create", "Update", "Patch", "Apply":
	default:
		return false
	}
	s := info.Selections[sel]
	if s == nil {
		return false
	}
	recv := types.TypeString(s.Recv(), nil)
	return recv == "sigs.k8s.io/controller-runtime/pkg/client.SubResourceWriter" ||
		recv == "sigs.k8s.io/controller-runtime/pkg/client.SubResourceClient"
}

func isAlert(t types.Type) bool {
	return types.TypeString(t, nil) == "*"+module+"/api/v1alpha1.Alert"
}
