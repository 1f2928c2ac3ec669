// Package alertmanager decodes Alertmanager's webhook payload (version 4) and
// maps each alert in it to an Alert spec, following documented, configurable
// rules. It is pure: the HTTP API decides what to create or count.
package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/alertmanager/template"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
)

// Message is Alertmanager's webhook body. It mirrors
// notify/webhook.Message, whose package would pull Alertmanager's cluster
// code in; the alerts themselves are Alertmanager's own template types.
type Message struct {
	*template.Data

	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// Statuses Alertmanager sends.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Decode reads one webhook body. An error means the whole request is
// unusable (Alertmanager drops a batch answered 4xx, so per-alert problems
// are reported by Map instead).
func Decode(r io.Reader) (*Message, error) {
	dec := json.NewDecoder(r)
	var m Message
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("body is not an Alertmanager webhook message: %w", err)
	}
	if dec.More() {
		return nil, errors.New("body holds more than one JSON value")
	}
	if m.Version != "4" {
		return nil, fmt.Errorf("version: unsupported webhook payload version %q (want \"4\")", m.Version)
	}
	if m.Data == nil || m.Alerts == nil {
		return nil, errors.New("alerts: required")
	}
	if len(m.Alerts) > MaxAlerts {
		return nil, &TooManyError{Got: len(m.Alerts)}
	}
	return &m, nil
}

// MaxAlerts bounds the alerts of one webhook message: each is counted
// concurrently, and a message must be answered within Alertmanager's
// timeout. Alertmanager's webhook_config max_alerts keeps its messages
// under it.
const MaxAlerts = 1000

// TooManyError refuses a message with more than MaxAlerts alerts.
type TooManyError struct{ Got int }

func (e *TooManyError) Error() string {
	return fmt.Sprintf("alerts: %d alerts in one message; at most %d: set max_alerts: %d in the webhook_config", e.Got, MaxAlerts, MaxAlerts)
}

// Rules map labels and annotations to Alert fields; the zero value is the
// documented default. An AlertRoutingPolicy's `alertmanager` section
// overrides ServiceLabel and SeverityMap.
type Rules struct {
	// ServiceLabel holds the service; "job" is the fallback.
	ServiceLabel string
	// SeverityMap maps the severity label's values to severities.
	SeverityMap map[string]v1.Severity
}

// DefaultSeverityMap is used when a policy sets none.
var DefaultSeverityMap = map[string]v1.Severity{
	"critical": v1.SeverityP1,
	"error":    v1.SeverityP2,
	"high":     v1.SeverityP2,
	"warning":  v1.SeverityP3,
	"info":     v1.SeverityP4,
}

// RulesFrom returns the rules of a policy's alertmanager section (nil: defaults).
func RulesFrom(m *v1.AlertmanagerMapping) Rules {
	if m == nil {
		return Rules{}
	}
	return Rules{ServiceLabel: m.ServiceLabel, SeverityMap: m.SeverityMap}
}

// Labels consumed by the mapping; they are not copied into spec.labels.
var consumed = []string{"alertname", "namespace", "service", "job", "env", "environment", "severity"}

// maxLabels is the CRD's bound on spec.labels.
const maxLabels = 32

// Instance identifies one firing instance: Alertmanager counts a re-send of
// the same fingerprint and startsAt as the same firing.
type Instance struct {
	Fingerprint string
	StartsAt    time.Time
}

// Key is a compact, stable form of the instance.
func (i Instance) Key() string {
	return i.Fingerprint + "@" + i.StartsAt.UTC().Format(time.RFC3339Nano)
}

// Item is one mapped alert.
type Item struct {
	// Namespace from the alert's namespace label; empty means "the caller's".
	Namespace string
	Spec      v1.AlertSpec
	Resolved  bool
	EndsAt    time.Time
	Instance  Instance
	// Err says why the alert could not be mapped; the rest of the batch is
	// still usable.
	Err error
}

// Map turns every alert of m into an Item.
func (r Rules) Map(m *Message) []Item {
	items := make([]Item, 0, len(m.Alerts))
	for _, a := range m.Alerts {
		items = append(items, r.mapOne(m, a))
	}
	return items
}

func (r Rules) mapOne(m *Message, a template.Alert) Item {
	it := Item{
		Namespace: a.Labels["namespace"],
		Resolved:  a.Status == StatusResolved,
		EndsAt:    a.EndsAt,
		Instance:  Instance{Fingerprint: a.Fingerprint, StartsAt: a.StartsAt},
	}
	if a.Status != StatusFiring && a.Status != StatusResolved {
		it.Err = fmt.Errorf("status: must be firing or resolved, not %q", a.Status)
		return it
	}
	if a.Fingerprint == "" {
		it.Err = errors.New("fingerprint: required")
		return it
	}
	serviceLabel := r.ServiceLabel
	if serviceLabel == "" {
		serviceLabel = v1.DefaultAlertmanagerSvcKey
	}
	service := dnsLabel(first(a.Labels[serviceLabel], a.Labels["job"]))
	if service == "" {
		it.Err = fmt.Errorf("labels.%s: required (or labels.job) to name the service", serviceLabel)
		return it
	}
	alertname := a.Labels["alertname"]
	kind := snakeCase(alertname)
	if kind == "" {
		it.Err = errors.New("labels.alertname: required")
		return it
	}
	it.Spec = v1.AlertSpec{
		Service:  service,
		Env:      first(dnsLabel(first(a.Labels["env"], a.Labels["environment"])), "prod"),
		Kind:     kind,
		Severity: r.severity(a.Labels["severity"]),
		Title:    clip.To(first(a.Annotations["summary"], alertname), 256),
		Message:  clip.To(a.Annotations["description"], 4096),
		Source:   clip.To("alertmanager/"+m.Receiver, 253),
		Labels:   specLabels(a.Labels, m.CommonLabels),
	}
	if it.Namespace != "" && len(validation.IsDNS1123Label(it.Namespace)) > 0 {
		it.Err = fmt.Errorf("labels.namespace: %q is not a namespace name", it.Namespace)
	}
	return it
}

func (r Rules) severity(label string) v1.Severity {
	sev := v1.Severity(strings.ToUpper(label))
	if sev.Rank() <= v1.SeverityP4.Rank() {
		return sev
	}
	m := r.SeverityMap
	if len(m) == 0 {
		m = DefaultSeverityMap
	}
	if s, ok := m[strings.ToLower(label)]; ok {
		return s
	}
	return v1.SeverityP3
}

// specLabels keeps the labels that tell firings apart. When there are more
// than the CRD allows, the group's common labels go first: they say least
// about this particular alert.
func specLabels(labels, common template.KV) map[string]string {
	var specific, shared []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if slices.Contains(consumed, k) || len(k) > 63 {
			continue
		}
		if _, ok := common[k]; ok {
			shared = append(shared, k)
		} else {
			specific = append(specific, k)
		}
	}
	keep := slices.Concat(specific, shared)
	if len(keep) > maxLabels {
		keep = keep[:maxLabels]
	}
	if len(keep) == 0 {
		return nil
	}
	out := make(map[string]string, len(keep))
	for _, k := range keep {
		out[k] = clip.To(labels[k], 256)
	}
	return out
}

// snakeCase turns an alertname such as HighLatency or KubePodCrashLooping
// into a kind (high_latency, kube_pod_crash_looping) matching
// ^[a-z][a-z0-9_]{0,62}$.
func snakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case r < unicode.MaxASCII && unicode.IsUpper(r):
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		case r < unicode.MaxASCII && (unicode.IsLower(r) || unicode.IsDigit(r)):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.Trim(collapse(b.String(), '_'), "_")
	if out == "" {
		return ""
	}
	if out[0] < 'a' || out[0] > 'z' {
		out = "alert_" + out
	}
	return strings.TrimRight(clip.To(out, 63), "_")
}

// dnsLabel lowercases s and replaces what a DNS label cannot hold with '-'.
func dnsLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(clip.To(collapse(b.String(), '-'), 63), "-")
}

func collapse(s string, c byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == c && i > 0 && s[i-1] == c {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
