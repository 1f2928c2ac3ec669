package base

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Action authenticates the caller (401 without a valid token) and answers
// 200 with what f returns, or f's refusal mapped onto the error contract.
func Action(auth *Authenticator, f func(context.Context, *User, *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := auth.Authenticate(w, r, false)
		if !ok {
			return
		}
		v, err := f(r.Context(), u, r)
		if err != nil {
			WriteRefusal(w, RefusalOf(r.Context(), err))
			return
		}
		WriteJSON(w, http.StatusOK, v)
	})
}

// ReadAll reads the (size-limited) body: 413 when too large.
func ReadAll(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, Refuse(http.StatusRequestEntityTooLarge, "body: must be at most "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes")
	case err != nil:
		return nil, Invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", "cannot be read: "+err.Error())})
	}
	return data, nil
}

// DecodeBody reads and decodes a JSON request body into v.
func DecodeBody(r *http.Request, v any) error {
	data, err := ReadAll(r)
	if err != nil {
		return err
	}
	return DecodeJSON(data, v)
}

// DecodeJSON decodes a JSON object into v strictly: an unknown field, a
// value of the wrong type or trailing data is a 400 naming the field. An
// empty body is an empty object.
func DecodeJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil && d.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return Invalid(field.ErrorList{field.Invalid(field.NewPath(typeErr.Field), typeErr.Value, "must be "+JSONType(typeErr.Type))})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid(field.ErrorList{field.NotSupported(field.NewPath(name), name, jsonNames(reflect.TypeOf(v)))})
	}
	return Invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", "must be a JSON object: "+err.Error())})
}

// JSONType names a Go type as JSON does.
func JSONType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// jsonNames are the JSON field names of struct type t (or *t), sorted.
func jsonNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if f.Anonymous || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
