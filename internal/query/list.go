package query

import (
	"time"

	"github.com/alertbridge/alertbridge/internal/kube"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// AlertItem is one Alert of GET /v1/alerts: the dashboard's line plus the
// fields an on-call engineer reads when working the queue. It is built the
// same way from a cached object and from a mirror row.
type AlertItem struct {
	AlertSummary
	UID         string            `json:"uid,omitempty"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	Message     string            `json:"message,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	FirstSeenAt *time.Time        `json:"firstSeenAt,omitempty"`
	Attempts    int32             `json:"attempts,omitempty"`
	LastError   string            `json:"lastError,omitempty"`
	DuplicateOf string            `json:"duplicateOf,omitempty"`
	AckBy       string            `json:"ackBy,omitempty"`
	AckNote     string            `json:"ackNote,omitempty"`
	AckedAt     *time.Time        `json:"ackedAt,omitempty"`
	// RequeuedBy, RequeueReason and RequeuedAt are the last requeue by hand.
	RequeuedBy    string     `json:"requeuedBy,omitempty"`
	RequeueReason string     `json:"requeueReason,omitempty"`
	RequeuedAt    *time.Time `json:"requeuedAt,omitempty"`
	ResolvedAt    *time.Time `json:"resolvedAt,omitempty"`
	Incident      string     `json:"incident,omitempty"`
	// DeletedAt is set on Alerts being deleted, and on history rows of
	// Alerts no longer in the cluster.
	DeletedAt *time.Time `json:"deletedAt,omitempty"`
}

// AlertList is the answer of GET /v1/alerts.
type AlertList struct {
	Namespace     string      `json:"namespace,omitempty"`
	WindowMinutes int64       `json:"windowMinutes"`
	Count         int         `json:"count"`
	Items         []AlertItem `json:"items"`
}

// IncidentList is the answer of GET /v1/incidents/open.
type IncidentList struct {
	Namespace string         `json:"namespace,omitempty"`
	Service   string         `json:"service,omitempty"`
	Count     int            `json:"count"`
	Items     []IncidentInfo `json:"items"`
}

// ListAlerts filters and orders items (newest first) into the list answer.
func ListAlerts(items []v1.Alert, f AlertFilter, namespace string, now time.Time) AlertList {
	l := AlertList{Namespace: namespace, WindowMinutes: int64(f.Window / time.Minute), Items: []AlertItem{}}
	for _, a := range Alerts(items, f, now) {
		l.Items = append(l.Items, Item(&a))
	}
	l.Count = len(l.Items)
	return l
}

// ListOpenIncidents is the answer of GET /v1/incidents/open.
func ListOpenIncidents(items []v1.Incident, namespace, service string) IncidentList {
	l := IncidentList{Namespace: namespace, Service: service, Items: []IncidentInfo{}}
	for _, inc := range OpenIncidents(items, service) {
		l.Items = append(l.Items, IncidentSummary(&inc))
	}
	l.Count = len(l.Items)
	return l
}

// Item is the list line of an Alert.
func Item(a *v1.Alert) AlertItem {
	s := &a.Status
	it := AlertItem{
		AlertSummary: summarize(a),
		UID:          string(a.UID), Fingerprint: s.Fingerprint, Message: a.Spec.Message, Labels: a.Spec.Labels,
		CreatedAt: a.CreationTimestamp.UTC(), FirstSeenAt: kube.UTC(s.FirstSeenAt),
		Attempts: s.Attempts, LastError: s.LastError, DuplicateOf: s.DuplicateOf,
		ResolvedAt: kube.UTC(s.ResolvedAt), DeletedAt: kube.UTC(a.DeletionTimestamp),
	}
	if s.Ack != nil {
		it.AckBy, it.AckNote, it.AckedAt = s.Ack.By, s.Ack.Note, kube.UTC(&s.Ack.At)
	}
	if s.Requeued != nil {
		it.RequeuedBy, it.RequeueReason, it.RequeuedAt = s.Requeued.By, s.Requeued.Reason, kube.UTC(&s.Requeued.At)
	}
	if s.IncidentRef != nil {
		it.Incident = s.IncidentRef.Name
	}
	if len(it.Labels) == 0 {
		it.Labels = nil
	}
	return it
}
