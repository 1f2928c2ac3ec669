package mirror

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Newer reports whether resourceVersion a is newer than b; an empty b (never
// written) is older than anything.
func Newer(a, b string) (bool, error) {
	if b == "" {
		return true, nil
	}
	c, err := resourceversion.CompareResourceVersion(a, b)
	if err != nil {
		return false, fmt.Errorf("failed to compare resourceVersions: %w", err)
	}
	return c > 0, nil
}

// checkRV refuses what cannot be ordered: the guard in SQL casts it to
// numeric, and a malformed value must not stall the mirror in a retry loop.
func checkRV(rv string) error {
	_, err := resourceversion.CompareResourceVersion(rv, rv)
	return err
}

func ts(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func deletedAt(m *metav1.ObjectMeta) *time.Time { return ts(m.DeletionTimestamp) }

// alertArgs are the columns of the alerts table, in insert order.
func alertArgs(a *v1.Alert) ([]any, error) {
	if err := checkRV(a.ResourceVersion); err != nil {
		return nil, fmt.Errorf("alert %s/%s: %w", a.Namespace, a.Name, err)
	}
	labels, err := json.Marshal(orEmpty(a.Spec.Labels))
	if err != nil {
		return nil, fmt.Errorf("failed to encode the labels of alert %s/%s: %w", a.Namespace, a.Name, err)
	}
	s := &a.Status
	var holder, ackBy, ackNote, incident string
	var ackedAt *time.Time
	if s.Claim != nil {
		holder = s.Claim.HolderIdentity
	}
	if s.Ack != nil {
		ackBy, ackNote, ackedAt = s.Ack.By, s.Ack.Note, ts(&s.Ack.At)
	}
	if s.IncidentRef != nil {
		incident = s.IncidentRef.Name
	}
	return []any{
		string(a.UID), a.Namespace, a.Name, a.ResourceVersion,
		s.Fingerprint, a.Spec.Service, a.Spec.Env, a.Spec.Kind, string(a.Spec.Severity),
		a.Spec.Title, a.Spec.Message, a.Spec.Source, labels,
		string(s.Phase), s.Occurrences, ts(s.FirstSeenAt), ts(s.LastSeenAt), s.DuplicateOf,
		holder, s.Attempts, s.LastError, ts(s.RetryAfter), ackBy, ackNote, ackedAt,
		ts(s.ResolvedAt), incident, a.CreationTimestamp.UTC(), deletedAt(&a.ObjectMeta),
	}, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func incidentArgs(in *v1.Incident) ([]any, error) {
	if err := checkRV(in.ResourceVersion); err != nil {
		return nil, fmt.Errorf("incident %s/%s: %w", in.Namespace, in.Name, err)
	}
	s := &in.Status
	refs := s.AlertRefs
	if refs == nil {
		refs = []string{}
	}
	refsJSON, err := json.Marshal(refs)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the alertRefs of incident %s/%s: %w", in.Namespace, in.Name, err)
	}
	var runs int32
	var lastTriage, cooldown *time.Time
	if s.Triage != nil {
		runs, lastTriage, cooldown = s.Triage.Runs, ts(s.Triage.LastTriageAt), ts(s.Triage.CooldownUntil)
	}
	postmortem := ""
	if s.PostmortemRef != nil {
		postmortem = s.PostmortemRef.Name
	}
	return []any{
		string(in.UID), in.Namespace, in.Name, in.ResourceVersion,
		in.Spec.Service, in.Spec.Env, string(in.Spec.Severity), in.Spec.Title, in.Spec.Signature,
		string(in.Spec.State), in.Spec.Note,
		ts(s.OpenedAt), ts(s.MitigatingAt), ts(s.ResolvedAt), ts(s.ClosedAt), ts(s.LastActivityAt),
		s.AlertCount, refsJSON, runs, lastTriage, cooldown, postmortem,
		in.CreationTimestamp.UTC(), deletedAt(&in.ObjectMeta),
	}, nil
}

// decimalRe is what the SLOPolicy controller writes for observed values; an
// unparsable value is stored as NULL instead of blocking the mirror.
var decimalRe = regexp.MustCompile(`^-?[0-9]{1,18}(\.[0-9]{1,12})?$`)

func decimal(s string) *string {
	if !decimalRe.MatchString(s) {
		return nil
	}
	return &s
}
