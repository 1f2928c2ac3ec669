package base

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Schemas of the API's Go types (JSON Schema 2020-12): the MCP tools'
// input and output schemas and the OpenAPI document's are made here from
// the same types the HTTP handlers decode and encode, so they cannot drift.

// schemaTypes are the types that do not marshal as their Go structure.
var schemaTypes = map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[time.Time]():        {Type: "string", Format: "date-time"},
	reflect.TypeFor[metav1.Time]():      {Type: "string", Format: "date-time"},
	reflect.TypeFor[metav1.MicroTime](): {Type: "string", Format: "date-time"},
	reflect.TypeFor[metav1.Duration]():  {Type: "string", Description: "a duration such as 10m"},
	reflect.TypeFor[StringList](): {
		Description: "a list, or a comma-separated string",
		AnyOf:       []*jsonschema.Schema{{Type: "array", Items: &jsonschema.Schema{Type: "string"}}, {Type: "string"}},
	},
}

// bounds refine the schema of a property wherever it appears, as the
// handlers check it.
var bounds = map[string]func(*jsonschema.Schema){
	"limit":         func(s *jsonschema.Schema) { s.Minimum, s.Maximum = ptrTo(0.0), ptrTo(float64(MaxClaimLimit)) },
	"windowMinutes": func(s *jsonschema.Schema) { s.Minimum, s.Maximum = ptrTo(0.0), ptrTo(float64(MaxWindowMinutes)) },
}

func ptrTo[T any](v T) *T { return &v }

// SchemaOf is the JSON Schema of t. It panics on a type it cannot describe:
// the types are fixed at build time, and a test builds every schema.
func SchemaOf(t reflect.Type) *jsonschema.Schema {
	s, err := jsonschema.ForType(t, &jsonschema.ForOptions{TypeSchemas: schemaTypes})
	if err != nil {
		panic(fmt.Sprintf("no JSON schema for %s: %v", t, err))
	}
	for name, p := range s.Properties {
		if f, ok := bounds[name]; ok {
			f(p)
		}
	}
	return s
}

// StringList is a list given as a JSON array or a comma-separated string
// (the tool endpoint's status_in).
type StringList []string

// UnmarshalJSON takes an array of strings or a comma-separated string.
func (l *StringList) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*l = strings.Split(s, ",")
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return &json.UnmarshalTypeError{Value: "value", Type: reflect.TypeFor[[]string]()}
	}
	*l = list
	return nil
}
