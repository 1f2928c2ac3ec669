package query

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Results of a notification, as the dashboard shows them.
const (
	NotificationDelivered = "delivered"
	NotificationPending   = "pending"
	NotificationFailed    = "failed"
)

// NotificationInfo is one notification of an Incident to a Receiver.
type NotificationInfo struct {
	Receiver string `json:"receiver"`
	Event    string `json:"event"`
	// Result is delivered, pending (an attempt is due at nextAttemptAt)
	// or failed (given up).
	Result   string `json:"result"`
	Attempts int32  `json:"attempts"`
	// At is when it was delivered, else when it was last attempted.
	At            *time.Time `json:"at,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	LastError     string     `json:"lastError,omitempty"`
}

// LastNotification is the Incident's most recently attempted notification
// (the controller appends each attempt's record at the end); nil when it
// has none.
func LastNotification(inc *v1.Incident) *NotificationInfo {
	ns := inc.Status.Notifications
	if len(ns) == 0 {
		return nil
	}
	n := &ns[len(ns)-1]
	info := &NotificationInfo{
		Receiver: n.Receiver, Event: string(n.Event), Attempts: n.Attempts, LastError: n.LastError,
		At: utcTime(n.LastAttemptAt), NextAttemptAt: utcTime(n.NextAttemptAt),
	}
	switch {
	case n.DeliveredAt != nil:
		info.Result, info.At = NotificationDelivered, utcTime(n.DeliveredAt)
	case n.NextAttemptAt != nil:
		info.Result = NotificationPending
	default:
		info.Result = NotificationFailed
	}
	return info
}

func utcTime(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
