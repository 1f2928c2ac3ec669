package metrics

import "github.com/prometheus/client_golang/prometheus"

// Results of a notification attempt (NotificationDeliveries' result).
const (
	ResultDelivered = "delivered"
	ResultRetrying  = "retrying"
	ResultFailed    = "failed"
)

// NotificationDeliveries counts attempts to deliver notifications, by
// receiver type (pagerduty, slack, webhook) and result: delivered,
// retrying (failed, another attempt is due) or failed (given up).
var NotificationDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "alertbridge_notification_deliveries_total",
	Help: "Notification delivery attempts by receiver type and result (delivered, retrying, failed).",
}, []string{"type", "result"})

// NotificationsPending is how many notifications (an Incident's event for
// a Receiver, or a digest of new Alerts) this replica has yet to deliver,
// by receiver type: waiting for a retry, a Receiver's groupInterval or its
// rate limit.
var NotificationsPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "alertbridge_notifications_pending",
	Help: "Notifications not yet delivered (waiting for a retry, the groupInterval or the rate limit), by receiver type.",
}, []string{"type"})
