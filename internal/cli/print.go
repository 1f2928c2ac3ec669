package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/kubectl/pkg/cmd/get"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"
)

// Output formats of -o. Commands that print Alerts, Incidents or Silences
// take kubectl get's formats and print with its printers; commands that
// print a result that is not an object (ingest, dashboard, release-check)
// take json and yaml.
const (
	outputTable = ""
	outputWide  = "wide"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// objectFormats is what -o accepts where objects are printed.
var objectFormats = strings.Join(get.NewGetPrintFlags().AllowedFormats(), "|")

// outputFlags are -o and --no-headers of a command that prints objects.
type outputFlags struct {
	format    string
	noHeaders bool
}

func addOutputFlag(cmd *cobra.Command, out *outputFlags) {
	cmd.Flags().StringVarP(&out.format, "output", "o", outputTable,
		"output format: "+objectFormats+" (as kubectl get), or empty for a table")
	cmd.Flags().BoolVar(&out.noHeaders, "no-headers", false, "print tables (the default, wide and custom-columns) without their header")
}

func addDataOutputFlag(cmd *cobra.Command, out *string, empty string) {
	cmd.Flags().StringVarP(out, "output", "o", outputTable, "output format: json|yaml, or empty for "+empty)
}

// checkOutput refuses, before anything is read or written, a format no
// printer takes (or a template that does not parse).
func checkOutput(out outputFlags) error {
	if _, err := objectPrinter(out, false); err != nil {
		return Exit(ExitUsage, fmt.Errorf("--output: %w", err))
	}
	return nil
}

func checkDataOutput(out string) error {
	switch out {
	case outputTable, outputJSON, outputYAML:
		return nil
	}
	return Exit(ExitUsage, fmt.Errorf("--output %q is not supported: use json or yaml", out))
}

func objectPrinter(out outputFlags, withNamespace bool) (printers.ResourcePrinter, error) {
	pf := get.NewGetPrintFlags()
	pf.OutputFormat = &out.format
	pf.NoHeaders = &out.noHeaders
	pf.HumanReadableFlags.WithNamespace = withNamespace
	return pf.ToPrinter()
}

func isTable(out outputFlags) bool { return out.format == outputTable || out.format == outputWide }

// printObjects prints objs as kubectl get does: a table (wide adds the
// columns of priority 1), or, in any other format, one object when single
// and a List otherwise. empty is said instead of an empty table.
func printObjects[T client.Object](w io.Writer, out outputFlags, objs []T, single, withNamespace bool, table func() *metav1.Table, empty string) error {
	p, err := objectPrinter(out, withNamespace)
	if err != nil {
		return Exit(ExitUsage, fmt.Errorf("--output: %w", err))
	}
	if isTable(out) {
		if len(objs) == 0 {
			if out.noHeaders {
				return nil // a script reading rows gets none
			}
			_, err := fmt.Fprintln(w, empty)
			return err
		}
		return p.PrintObj(table(), w)
	}
	items := make([]unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		u, err := toUnstructured(o)
		if err != nil {
			return err
		}
		items = append(items, u)
	}
	if single && len(items) == 1 {
		return p.PrintObj(&items[0], w)
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{
		"apiVersion": "v1", "kind": "List", "metadata": map[string]any{"resourceVersion": ""},
	}, Items: items}
	return p.PrintObj(list, w)
}

// toUnstructured is obj with its apiVersion and kind, which typed clients
// leave empty, as the printers need them.
func toUnstructured(obj client.Object) (unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(obj, cliScheme)
	if err != nil {
		return unstructured.Unstructured{}, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return unstructured.Unstructured{}, err
	}
	u := unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// newTable is a table of the columns given as name, or name:wide for
// one only -o wide shows.
func newTable(columns ...string) *metav1.Table {
	t := &metav1.Table{}
	for _, c := range columns {
		name, wide := strings.CutSuffix(c, ":wide")
		def := metav1.TableColumnDefinition{Name: name, Type: "string"}
		if wide {
			def.Priority = 1
		}
		t.ColumnDefinitions = append(t.ColumnDefinitions, def)
	}
	return t
}

// addRow adds obj's row; the printer reads its namespace (for -A) from obj.
func addRow(t *metav1.Table, obj runtime.Object, cells ...any) {
	t.Rows = append(t.Rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: obj}})
}

// printData prints a result that is not an object as JSON or YAML, or
// calls text for the default.
func printData(w io.Writer, format string, v any, text func() error) error {
	switch format {
	case outputJSON:
		return printJSON(w, v)
	case outputYAML:
		data, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("failed to encode YAML: %w", err)
		}
		_, err = w.Write(data)
		return err
	}
	return text()
}

func printJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return fmt.Errorf("failed to encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}
