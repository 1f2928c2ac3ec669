package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/util/jsonpath"
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

// outputFlags are -o and --no-headers of a command that prints objects,
// and, where it prints them as a table, kubectl get's --show-labels,
// -L/--label-columns and --sort-by.
type outputFlags struct {
	format    string
	noHeaders bool
	// human holds --show-labels, -L and --sort-by; nil where the command
	// does not take them.
	human *get.HumanPrintFlags
	// warn, when set, is where a --sort-by field found wanting is told of
	// (see afterWrite).
	warn io.Writer
}

// afterWrite is out for printing what a command has written (claimed,
// renewed, acked, failed): the write is done and its result must be seen,
// so a --sort-by field that the objects do not have is warned of on
// errOut and the objects are printed in the command's order.
func (out outputFlags) afterWrite(errOut io.Writer) outputFlags {
	out.warn = errOut
	return out
}

// unsorted is out without --sort-by.
func (out outputFlags) unsorted() outputFlags {
	if out.human != nil {
		h, none := *out.human, ""
		h.SortBy = &none
		out.human = &h
	}
	return out
}

func addOutputFlag(cmd *cobra.Command, out *outputFlags) {
	cmd.Flags().StringVarP(&out.format, "output", "o", outputTable,
		"output format: "+objectFormats+" (as kubectl get), or empty for a table")
	cmd.Flags().BoolVar(&out.noHeaders, "no-headers", false, "print tables (the default, wide and custom-columns) without their header")
}

// addListOutputFlags adds, to -o and --no-headers, kubectl get's flags of
// a command that lists objects: --show-labels, -L/--label-columns and
// --sort-by, read by kubectl's table printer and sorting printer.
func addListOutputFlags(cmd *cobra.Command, out *outputFlags) {
	addOutputFlag(cmd, out)
	h := get.NewHumanPrintFlags()
	h.ShowKind = nil // each command prints one kind
	out.human = h
	f := cmd.Flags()
	f.BoolVar(h.ShowLabels, "show-labels", false, "print the metadata.labels of each object as the last column (default and wide tables)")
	short := "L"
	if f.ShorthandLookup(short) != nil {
		short = "" // keep the command's own -L; the long form still works
	}
	f.StringSliceVarP(h.ColumnLabels, "label-columns", short, nil,
		"print the values of these metadata.labels keys as columns, e.g. -L ops.alertbridge.io/fingerprint; "+
			"repeat or separate with commas")
	f.StringVar(h.SortBy, "sort-by", "",
		"sort by this field, a JSONPath as kubectl get takes it (e.g. .metadata.creationTimestamp or {.status.occurrences}); "+
			"the field must hold a string or a number")
}

func (out outputFlags) sortBy() string {
	if out.human == nil || out.human.SortBy == nil {
		return ""
	}
	return *out.human.SortBy
}

func (out outputFlags) showLabels() bool {
	return out.human != nil && out.human.ShowLabels != nil && *out.human.ShowLabels
}

func (out outputFlags) labelColumns() []string {
	if out.human == nil || out.human.ColumnLabels == nil {
		return nil
	}
	return *out.human.ColumnLabels
}

func addDataOutputFlag(cmd *cobra.Command, out *string, empty string) {
	cmd.Flags().StringVarP(out, "output", "o", outputTable, "output format: json|yaml, or empty for "+empty)
}

// checkOutput refuses, before anything is read or written, a format no
// printer takes (or a template that does not parse), and the label and
// sort flags where kubectl get refuses them: --show-labels outside a
// table, -L with custom-columns, a --sort-by that is no JSONPath.
func checkOutput(out outputFlags) error {
	if _, err := objectPrinter(out, false); err != nil {
		return Exit(ExitUsage, fmt.Errorf("--output: %w", err))
	}
	if out.showLabels() && !isTable(out) {
		return Exit(ExitUsage, fmt.Errorf("--show-labels cannot be used with -o %s", out.format))
	}
	if len(out.labelColumns()) > 0 && strings.HasPrefix(out.format, "custom-columns") {
		return Exit(ExitUsage, errors.New("--label-columns cannot be used with -o custom-columns: add the label as a column, e.g. HOST:.metadata.labels.host"))
	}
	if by := out.sortBy(); by != "" {
		if _, err := sortParser(by); err != nil {
			return Exit(ExitUsage, fmt.Errorf("--sort-by %q: %w", by, err))
		}
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

// objectPrinter is kubectl get's printer for out: its table printer with
// the label columns, or the printer of -o; with --sort-by, wrapped in its
// sorting printer, which orders a table's rows and a List's items alike.
func objectPrinter(out outputFlags, withNamespace bool) (printers.ResourcePrinter, error) {
	pf := get.NewGetPrintFlags()
	pf.OutputFormat = &out.format
	pf.NoHeaders = &out.noHeaders
	if out.human != nil {
		pf.HumanReadableFlags.ShowLabels = out.human.ShowLabels
		pf.HumanReadableFlags.ColumnLabels = out.human.ColumnLabels
	}
	pf.HumanReadableFlags.WithNamespace = withNamespace
	p, err := pf.ToPrinter()
	if err != nil {
		return nil, err
	}
	if by := out.sortBy(); by != "" {
		p = &get.SortingPrinter{SortField: by, Delegate: p, Decoder: unstructured.UnstructuredJSONScheme}
	}
	return p, nil
}

func isTable(out outputFlags) bool { return out.format == outputTable || out.format == outputWide }

// sortParser is --sort-by as kubectl get reads it: .a.b, a.b or {.a.b}.
func sortParser(field string) (*jsonpath.JSONPath, error) {
	expr, err := get.RelaxedJSONPathExpression(field)
	if err != nil {
		return nil, err
	}
	p := jsonpath.New("sort-by").AllowMissingKeys(true)
	if err := p.Parse(expr); err != nil {
		return nil, err
	}
	return p, nil
}

// checkSortField refuses a --sort-by field that none of items has, as
// kubectl get does, and one holding what kubectl's sorter cannot order (a
// map, a list, a bool), which it would otherwise end the process on.
func checkSortField(field, kind string, items []unstructured.Unstructured) error {
	if field == "" || len(items) == 0 {
		return nil
	}
	p, err := sortParser(field)
	if err != nil {
		return Exit(ExitUsage, fmt.Errorf("--sort-by %q: %w", field, err))
	}
	found := false
	for i := range items {
		res, err := p.FindResults(items[i].Object)
		if err != nil {
			return Exit(ExitUsage, fmt.Errorf("--sort-by %q: %w", field, err))
		}
		if len(res) == 0 || len(res[0]) == 0 {
			continue
		}
		found = true
		switch v := res[0][0].Interface().(type) {
		case nil, string, int64, float64:
		default:
			return Exit(ExitUsage, fmt.Errorf("--sort-by %q: %s holds %s, not a string or a number",
				field, items[i].GetName(), describeValue(v)))
		}
	}
	if !found {
		return Exit(ExitUsage, fmt.Errorf("--sort-by %q: no %s printed has this field", field, kind))
	}
	return nil
}

func describeValue(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return "a bool"
	}
	return fmt.Sprintf("a %T", v)
}

// printObjects prints objs as kubectl get does: a table (wide adds the
// columns of priority 1), or, in any other format, one object when single
// and a List otherwise; --sort-by orders either. empty is said instead of
// an empty table.
func printObjects[T client.Object](w io.Writer, out outputFlags, objs []T, single, withNamespace bool, table func() *metav1.Table, empty string) error {
	items := make([]unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		u, err := toUnstructured(o)
		if err != nil {
			return err
		}
		items = append(items, u)
	}
	if len(items) > 0 {
		if err := checkSortField(out.sortBy(), items[0].GetKind(), items); err != nil {
			if out.warn == nil {
				return err
			}
			fmt.Fprintf(out.warn, "warning: %v; printed unsorted\n", err)
			out = out.unsorted()
		}
	}
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
		t := table()
		// The rows carry their objects as kubectl's do, unstructured:
		// the sorter reads the JSON fields, the printer the labels.
		for i := range t.Rows {
			if o, ok := t.Rows[i].Object.Object.(client.Object); ok {
				u, err := toUnstructured(o)
				if err != nil {
					return err
				}
				t.Rows[i].Object.Object = &u
			}
		}
		return p.PrintObj(t, w)
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
