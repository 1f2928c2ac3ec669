// Package ingest decodes the HTTP ingest JSON — one alert, or
// {"alerts": [...]} — into Alert specs. The JSON fields are the Alert spec
// fields in camelCase; snake_case names (dedupe_ttl_minutes, …), as
// tool-calling agents send them, are accepted too. Every problem comes back as a field error naming the
// field, so a monitor learns what to fix before anything reaches the API
// server. Pure: the CLI and the HTTP API both call it.
package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// MaxAlerts bounds one request.
const MaxAlerts = 500

// Bounds shared with the CRD's OpenAPI schema.
var (
	dnsLabel      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	kindPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	fingerprintRe = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.:/]*$`)
	severities    = []string{"P0", "P1", "P2", "P3", "P4"}
)

// aliases maps every accepted JSON name to its spec field.
var aliases = map[string]string{
	"service": "service", "env": "env", "environment": "env", "kind": "kind",
	"severity": "severity", "title": "title", "message": "message", "source": "source",
	"labels": "labels", "fingerprint": "fingerprint",
	"dedupeTTL": "dedupeTTL", "dedupe_ttl": "dedupeTTL",
	"dedupeTTLMinutes": "dedupeTTLMinutes", "dedupe_ttl_minutes": "dedupeTTLMinutes",
}

// Decode parses one alert or {"alerts": [...]} into specs. On any error it
// returns no specs and every field error it found.
func Decode(data []byte) ([]v1.AlertSpec, field.ErrorList) {
	var top map[string]json.RawMessage
	if err := strictUnmarshal(data, &top); err != nil || top == nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("body"), "", fmt.Sprintf("must be a JSON object (one alert or {\"alerts\": [...]}): %v", errText(err)))}
	}
	raw, batch := top["alerts"]
	if !batch {
		spec, errs := decodeOne(top, nil)
		if len(errs) > 0 {
			return nil, errs
		}
		return []v1.AlertSpec{spec}, nil
	}
	path := field.NewPath("alerts")
	if len(top) > 1 {
		return nil, field.ErrorList{field.Invalid(field.NewPath("body"), "", `a batch has only the field "alerts"`)}
	}
	var items []map[string]json.RawMessage
	if err := strictUnmarshal(raw, &items); err != nil {
		return nil, field.ErrorList{field.Invalid(path, "", "must be an array of alert objects: "+errText(err))}
	}
	if len(items) == 0 {
		return nil, field.ErrorList{field.Required(path, "at least one alert")}
	}
	if len(items) > MaxAlerts {
		return nil, field.ErrorList{field.TooMany(path, len(items), MaxAlerts)}
	}
	var all field.ErrorList
	specs := make([]v1.AlertSpec, 0, len(items))
	for i, item := range items {
		if item == nil {
			all = append(all, field.Invalid(path.Index(i), nil, "must be an object"))
			continue
		}
		spec, errs := decodeOne(item, path.Index(i))
		all = append(all, errs...)
		specs = append(specs, spec)
	}
	if len(all) > 0 {
		return nil, all
	}
	return specs, nil
}

// DecodeRequest is Decode that also says whether the body was a batch
// ({"alerts": [...]}) — a batch of one is still answered as a batch.
func DecodeRequest(data []byte) ([]v1.AlertSpec, bool, field.ErrorList) {
	specs, errs := Decode(data)
	if len(errs) > 0 {
		return nil, false, errs
	}
	var top map[string]json.RawMessage
	// Decode accepted data, so it is a JSON object.
	_ = strictUnmarshal(data, &top)
	_, batch := top["alerts"]
	return specs, batch, nil
}

func errText(err error) string {
	if err == nil {
		return "null"
	}
	return err.Error()
}

func strictUnmarshal(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// fieldPath names f under base, or alone for a single alert.
func fieldPath(base *field.Path, f string) *field.Path {
	if base == nil {
		return field.NewPath(f)
	}
	return base.Child(f)
}

func decodeOne(obj map[string]json.RawMessage, base *field.Path) (v1.AlertSpec, field.ErrorList) {
	var spec v1.AlertSpec
	var errs field.ErrorList
	seen := map[string]string{}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	str := func(name string, raw json.RawMessage) string {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			errs = append(errs, field.Invalid(fieldPath(base, name), string(raw), "must be a string"))
		}
		return s
	}
	for _, name := range keys {
		raw := obj[name]
		target, ok := aliases[name]
		if !ok {
			errs = append(errs, field.NotSupported(fieldPath(base, name), name, acceptedNames()))
			continue
		}
		if other, dup := seen[canonicalTTL(target)]; dup {
			errs = append(errs, field.Duplicate(fieldPath(base, name), fmt.Sprintf("also given as %s", other)))
			continue
		}
		seen[canonicalTTL(target)] = name
		p := fieldPath(base, name)
		switch target {
		case "service":
			spec.Service = str(name, raw)
		case "env":
			spec.Env = str(name, raw)
		case "kind":
			spec.Kind = str(name, raw)
		case "severity":
			spec.Severity = v1.Severity(strings.ToUpper(str(name, raw)))
		case "title":
			spec.Title = str(name, raw)
		case "message":
			spec.Message = str(name, raw)
		case "source":
			spec.Source = str(name, raw)
		case "fingerprint":
			spec.Fingerprint = str(name, raw)
		case "labels":
			if err := json.Unmarshal(raw, &spec.Labels); err != nil {
				errs = append(errs, field.Invalid(p, string(raw), "must be an object of string values"))
			}
		case "dedupeTTL":
			s := str(name, raw)
			if d, err := time.ParseDuration(s); err != nil {
				errs = append(errs, field.Invalid(p, s, "must be a Go duration such as 30m"))
			} else {
				spec.DedupeTTL = &metav1.Duration{Duration: d}
			}
		case "dedupeTTLMinutes":
			var n json.Number
			if err := json.Unmarshal(raw, &n); err != nil {
				errs = append(errs, field.Invalid(p, string(raw), "must be a number of minutes"))
				continue
			}
			m, err := n.Float64()
			if err != nil || m != m || m > 720*60 || m < 0 {
				errs = append(errs, field.Invalid(p, n.String(), "must be a number of minutes up to 43200"))
				continue
			}
			spec.DedupeTTL = &metav1.Duration{Duration: time.Duration(m * float64(time.Minute))}
		}
	}
	errs = append(errs, Validate(&spec, base, seen)...)
	return spec, errs
}

func canonicalTTL(target string) string {
	if target == "dedupeTTLMinutes" {
		return "dedupeTTL"
	}
	return target
}

func acceptedNames() []string {
	names := make([]string, 0, len(aliases))
	for k := range aliases {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Validate checks a spec against the CRD's bounds. names maps spec fields
// to the JSON names the caller used, so errors say what the caller wrote.
func Validate(s *v1.AlertSpec, base *field.Path, names map[string]string) field.ErrorList {
	var errs field.ErrorList
	p := func(f string) *field.Path {
		if n, ok := names[f]; ok {
			return fieldPath(base, n)
		}
		return fieldPath(base, f)
	}
	dns := func(f, v string, required bool) {
		switch {
		case v == "" && required:
			errs = append(errs, field.Required(p(f), ""))
		case v == "":
		case len(v) > 63:
			errs = append(errs, field.TooLong(p(f), v, 63))
		case !dnsLabel.MatchString(v):
			errs = append(errs, field.Invalid(p(f), v, "must be a DNS label: lower-case letters, digits and '-'"))
		}
	}
	dns("service", s.Service, true)
	dns("env", s.Env, false)
	switch {
	case s.Kind == "":
		errs = append(errs, field.Required(p("kind"), ""))
	case !kindPattern.MatchString(s.Kind):
		errs = append(errs, field.Invalid(p("kind"), s.Kind, "must match ^[a-z][a-z0-9_]{0,62}$"))
	}
	if s.Severity != "" && !slices.Contains(severities, string(s.Severity)) {
		errs = append(errs, field.NotSupported(p("severity"), s.Severity, severities))
	}
	switch {
	case s.Title == "":
		errs = append(errs, field.Required(p("title"), ""))
	case len(s.Title) > 256:
		errs = append(errs, field.TooLong(p("title"), "", 256))
	}
	if len(s.Message) > 4096 {
		errs = append(errs, field.TooLong(p("message"), "", 4096))
	}
	if len(s.Source) > 253 {
		errs = append(errs, field.TooLong(p("source"), "", 253))
	}
	if len(s.Labels) > 32 {
		errs = append(errs, field.TooMany(p("labels"), len(s.Labels), 32))
	}
	for k, v := range s.Labels {
		if k == "" || len(k) > 63 || len(v) > 256 {
			errs = append(errs, field.Invalid(p("labels").Key(k), v, "keys must be 1..63 and values at most 256 characters"))
		}
	}
	if s.Fingerprint != "" && (len(s.Fingerprint) > 128 || !fingerprintRe.MatchString(s.Fingerprint)) {
		errs = append(errs, field.Invalid(p("fingerprint"), s.Fingerprint, "must be at most 128 characters matching ^[A-Za-z0-9][-A-Za-z0-9_.:/]*$"))
	}
	if s.DedupeTTL != nil && (s.DedupeTTL.Duration < time.Second || s.DedupeTTL.Duration > 720*time.Hour) {
		errs = append(errs, field.Invalid(p("dedupeTTL"), s.DedupeTTL.Duration.String(), "must be between 1s and 720h"))
	}
	return errs
}
