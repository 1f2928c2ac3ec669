package httpapi

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

// workRoutes serves the work queue: claim, renew, ack, fail, to-incident and
// the incident actions. Each authenticates the caller, then the action
// authorises the exact verbs (SubjectAccessReview) before the operator writes.
func (s *Server) workRoutes() {
	s.handle("POST /v1/alerts/claim", s.action(func(ctx context.Context, u *User, r *http.Request) (any, error) {
		var req ClaimRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return s.claimAlerts(ctx, u, req)
	}))
	alertAction := func(name string, f func(context.Context, *User, ref, []byte) (any, error)) {
		s.handle("POST /v1/alerts/{namespace}/{name}/"+name, s.action(func(ctx context.Context, u *User, r *http.Request) (any, error) {
			body, err := readAll(r)
			if err != nil {
				return nil, err
			}
			return f(ctx, u, pathRef(r), body)
		}))
	}
	alertAction("renew", func(ctx context.Context, u *User, at ref, body []byte) (any, error) {
		var req RenewRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.renewAlert(ctx, u, at, req)
	})
	alertAction("ack", func(ctx context.Context, u *User, at ref, body []byte) (any, error) {
		var req AckRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.ackAlert(ctx, u, at, req)
	})
	alertAction("fail", func(ctx context.Context, u *User, at ref, body []byte) (any, error) {
		var req FailRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.failAlert(ctx, u, at, req)
	})
	alertAction("to-incident", func(ctx context.Context, u *User, at ref, body []byte) (any, error) {
		var req ToIncidentRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.toIncident(ctx, u, at, req)
	})
	incidentAction := func(name string, f func(context.Context, *User, ref, []byte) (any, error)) {
		s.handle("POST /v1/incidents/{namespace}/{name}/"+name, s.action(func(ctx context.Context, u *User, r *http.Request) (any, error) {
			body, err := readAll(r)
			if err != nil {
				return nil, err
			}
			return f(ctx, u, pathRef(r), body)
		}))
	}
	incidentAction("note", func(ctx context.Context, u *User, at ref, body []byte) (any, error) {
		var req IncidentNoteRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.noteIncident(ctx, u, at, req)
	})
	incidentAction("close", func(ctx context.Context, u *User, at ref, body []byte) (any, error) {
		var req IncidentCloseRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.closeIncident(ctx, u, at, req)
	})
	incidentAction("state", func(ctx context.Context, u *User, at ref, body []byte) (any, error) {
		var req IncidentStateRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.setIncidentState(ctx, u, at, req)
	})
}

func pathRef(r *http.Request) ref {
	return ref{ns: r.PathValue("namespace"), name: r.PathValue("name")}
}

// action authenticates the caller (401 without a valid token) and answers
// 200 with what f returns, or f's refusal mapped onto the error contract.
func (s *Server) action(f func(context.Context, *User, *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.auth.Authenticate(w, r, false)
		if !ok {
			return
		}
		v, err := f(r.Context(), u, r)
		if err != nil {
			writeProblem(w, toProblem(r.Context(), err))
			return
		}
		WriteJSON(w, http.StatusOK, v)
	})
}

// readAll reads the (size-limited) body: 413 when too large.
func readAll(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, newProblem(http.StatusRequestEntityTooLarge, "body: must be at most "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes")
	case err != nil:
		return nil, invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", "cannot be read: "+err.Error())})
	}
	return data, nil
}

// decodeBody reads and decodes a JSON request body into v.
func decodeBody(r *http.Request, v any) error {
	data, err := readAll(r)
	if err != nil {
		return err
	}
	return decodeJSON(data, v)
}

// decodeJSON decodes a JSON object into v strictly: an unknown field, a
// value of the wrong type or trailing data is a 400 naming the field. An
// empty body is an empty object.
func decodeJSON(data []byte, v any) error {
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
		return invalid(field.ErrorList{field.Invalid(field.NewPath(typeErr.Field), typeErr.Value, "must be "+jsonType(typeErr.Type))})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid(field.ErrorList{field.NotSupported(field.NewPath(name), name, jsonNames(reflect.TypeOf(v)))})
	}
	return invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", "must be a JSON object: "+err.Error())})
}

// jsonType names a Go type as JSON does.
func jsonType(t reflect.Type) string {
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
