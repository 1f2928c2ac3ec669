package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ReceiverType says what a Receiver talks to.
// +kubebuilder:validation:Enum=pagerduty;slack;webhook
type ReceiverType string

// Receiver types.
const (
	// ReceiverPagerDuty is PagerDuty's Events API v2.
	ReceiverPagerDuty ReceiverType = "pagerduty"
	// ReceiverSlack is a Slack incoming webhook.
	ReceiverSlack ReceiverType = "slack"
	// ReceiverWebhook is a generic JSON webhook, signed with HMAC-SHA256.
	ReceiverWebhook ReceiverType = "webhook"
)

// DefaultPagerDutyEventsURL is where PagerDuty's Events API v2 takes events.
const DefaultPagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// NotificationEvent is an Incident event a Receiver may be told about.
// +kubebuilder:validation:Enum=Opened;SeverityRaised;StateChanged;Resolved;Closed
type NotificationEvent string

// Notification events. AlertsFiring is not an Incident event: it is the
// digest of new Alerts a Receiver with spec.alerts gets.
const (
	NotifyOpened         NotificationEvent = "Opened"
	NotifySeverityRaised NotificationEvent = "SeverityRaised"
	NotifyStateChanged   NotificationEvent = "StateChanged"
	NotifyResolved       NotificationEvent = "Resolved"
	NotifyClosed         NotificationEvent = "Closed"
	NotifyAlertsFiring   NotificationEvent = "AlertsFiring"
)

// IncidentEvents are the Incident events, the default of spec.events.
var IncidentEvents = []NotificationEvent{NotifyOpened, NotifySeverityRaised, NotifyStateChanged, NotifyResolved, NotifyClosed}

// Receiver condition types and reasons.
const (
	// ReceiverConditionReady says whether the Receiver's Secret holds what
	// its type needs and may be sent.
	ReceiverConditionReady = "Ready"

	ReasonReceiverReady = "Ready"
	ReasonSecretMissing = "SecretMissing"
	ReasonKeyMissing    = "KeyMissing"
	ReasonInvalidSecret = "InvalidSecret"
)

// Default Secret keys of each receiver type (spec.secretRef.key).
const (
	DefaultPagerDutyKey = "routingKey"
	DefaultSlackKey     = "webhookURL"
	DefaultWebhookKey   = "signingKey"
)

// SecretKeyReference names one key of a Secret in the Receiver's namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key in the Secret's data; the default depends on spec.type:
	// routingKey (pagerduty), webhookURL (slack), signingKey (webhook).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// ReceiverAlerts turns on the announcement of new Alerts.
type ReceiverAlerts struct {
	// minSeverity: a new Alert of this severity or worse is announced (in
	// a digest: every Alert that came into play since the last one).
	// Silenced Alerts are not announced while silenced.
	// +required
	MinSeverity Severity `json:"minSeverity"`
}

// ReceiverRateLimit is a token bucket: at most burst notifications at
// once, refilled at perMinute.
type ReceiverRateLimit struct {
	// perMinute is the sustained rate.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	PerMinute int32 `json:"perMinute,omitempty"`

	// burst is how many may go at once.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Burst int32 `json:"burst,omitempty"`
}

// ReceiverSpec says where notifications go and which.
// +kubebuilder:validation:XValidation:rule="self.type != 'webhook' || (has(self.url) && size(self.url) > 0)",message="spec.url is required for a webhook Receiver",fieldPath=".url"
// +kubebuilder:validation:XValidation:rule="self.type != 'slack' || !has(self.url) || size(self.url) == 0",message="spec.url: a Slack incoming webhook URL is itself the credential; put it in the Secret named by spec.secretRef (key webhookURL) and leave spec.url empty",fieldPath=".url"
// +kubebuilder:validation:XValidation:rule="self.type != 'pagerduty' || !has(self.alerts)",message="spec.alerts: a pagerduty Receiver pages on Incidents only (alertbridge would never resolve a page per Alert); use a slack or webhook Receiver for Alerts, or let the AlertRoutingPolicy's incident.auto open Incidents",fieldPath=".alerts"
// +kubebuilder:validation:XValidation:rule="(has(self.events) && size(self.events) > 0) || has(self.alerts)",message="spec.events: a Receiver must be told about something: list Incident events, or set spec.alerts",fieldPath=".events"
type ReceiverSpec struct {
	// type is what the Receiver talks to: pagerduty (Events API v2),
	// slack (an incoming webhook) or webhook (JSON, signed).
	// +required
	Type ReceiverType `json:"type"`

	// url: for webhook, where to POST (required); for pagerduty, the
	// Events API URL (default https://events.pagerduty.com/v2/enqueue);
	// for slack it must be empty (the webhook URL is in the Secret).
	// Whoever sets or changes it while secretRef is set must be allowed
	// to get that Secret (admission policy alertbridge-receiver-credentials).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self == '' || (isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https'))",message="spec.url must be an http or https URL"
	URL string `json:"url,omitempty"`

	// secretRef names the credential: the PagerDuty routing key, the
	// Slack webhook URL, or the webhook's HMAC signing key. Whoever sets
	// or changes it must be allowed to get that Secret; a Secret of type
	// kubernetes.io/service-account-token is never used.
	// +required
	SecretRef SecretKeyReference `json:"secretRef"`

	// events are the Incident events sent (default: all of them).
	// StateChanged is Mitigating, and Open again after Mitigating or
	// Resolved.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:default={Opened,SeverityRaised,StateChanged,Resolved,Closed}
	Events []NotificationEvent `json:"events,omitempty"`

	// minSeverity: Incidents of this severity or worse are announced (all
	// when empty). Once announced, an Incident is followed to its end
	// whatever its severity becomes.
	// +optional
	MinSeverity Severity `json:"minSeverity,omitempty"`

	// services limits the Receiver to Incidents (and Alerts) of these
	// services; empty means all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	Services []string `json:"services,omitempty"`

	// envs limits the Receiver to these environments; empty means all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=63
	Envs []string `json:"envs,omitempty"`

	// alerts, when set, also announces new Alerts (slack and webhook).
	// +optional
	Alerts *ReceiverAlerts `json:"alerts,omitempty"`

	// groupInterval is the least time between two notifications of one
	// Incident (or two Alert digests) to this Receiver: changes inside it
	// coalesce into one notification of the latest state. The first
	// notification of an Incident is not delayed.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="spec.groupInterval must be at most 1h"
	GroupInterval *metav1.Duration `json:"groupInterval,omitempty"`

	// rateLimit bounds what this Receiver is sent, whatever happens.
	// +optional
	// +kubebuilder:default={}
	RateLimit ReceiverRateLimit `json:"rateLimit,omitempty"`
}

// DeliveryAttempts is the record of one notification's delivery: one POST
// per attempt, spaced by a capped exponential backoff, until delivered or
// the attempts are spent. Neither deliveredAt nor nextAttemptAt set means
// it was given up.
type DeliveryAttempts struct {
	// attempts counts the POSTs made.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Attempts int32 `json:"attempts,omitempty"`

	// lastAttemptAt is when the last POST was made.
	// +optional
	LastAttemptAt *metav1.Time `json:"lastAttemptAt,omitempty"`

	// lastError says why the last attempt failed, in the operator's words
	// with the HTTP status code (never the receiver's text).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	LastError string `json:"lastError,omitempty"`

	// nextAttemptAt is when the next POST is due while not delivered.
	// +optional
	NextAttemptAt *metav1.Time `json:"nextAttemptAt,omitempty"`

	// deliveredAt is when the receiver accepted it (a 2xx answer).
	// +optional
	DeliveredAt *metav1.Time `json:"deliveredAt,omitempty"`
}

// IncidentNotification is one notification of an Incident to a Receiver.
type IncidentNotification struct {
	// receiver names the Receiver in the Incident's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Receiver string `json:"receiver"`

	// event announced.
	// +required
	Event NotificationEvent `json:"event"`

	// seq numbers the notifications of this Incident to this Receiver.
	// +required
	// +kubebuilder:validation:Minimum=1
	Seq int32 `json:"seq"`

	// state is the Incident state the receiver knows once this is
	// delivered.
	// +required
	State IncidentState `json:"state"`

	// severity is the Incident severity it announces.
	// +required
	Severity Severity `json:"severity"`

	// key identifies the notification to the receiver (the webhook's
	// Idempotency-Key): the same on every attempt and after a restart.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Key string `json:"key"`

	DeliveryAttempts `json:",inline"`
}

// AlertDigest is one announcement of the new Alerts that came into play
// after status.alerts.notifiedThrough, up to through.
type AlertDigest struct {
	// key identifies the digest to the receiver (Idempotency-Key).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Key string `json:"key"`

	// through: Alerts that came into play up to this time are in it.
	// +required
	Through metav1.Time `json:"through"`

	// alerts counts the Alerts in it when it was cut.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Alerts int32 `json:"alerts,omitempty"`

	DeliveryAttempts `json:",inline"`
}

// ReceiverAlertsStatus is where the announcement of new Alerts stands.
type ReceiverAlertsStatus struct {
	// notifiedThrough: every Alert that came into play (was first seen,
	// or its Silence ended) at or before this time was announced or was
	// not to be.
	// +optional
	NotifiedThrough *metav1.Time `json:"notifiedThrough,omitempty"`

	// digest is the digest being delivered, or the last one.
	// +optional
	Digest *AlertDigest `json:"digest,omitempty"`
}

// ReceiverStatus is the observed state of a Receiver.
type ReceiverStatus struct {
	// observedGeneration is the generation last checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, CredentialsAvailable.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// alerts is the announcement of new Alerts (with spec.alerts).
	// +optional
	Alerts *ReceiverAlertsStatus `json:"alerts,omitempty"`
}

// Receiver is where a namespace's notifications go: a PagerDuty service, a
// Slack channel or a webhook, and which events it is told about. Each
// delivery is recorded in the Incident's status.notifications.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rcv,categories=alertbridge
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Min",type=string,JSONPath=`.spec.minSeverity`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Receiver struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says where notifications go and which.
	// +required
	Spec ReceiverSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status ReceiverStatus `json:"status,omitempty"`
}

// ReceiverList contains a list of Receiver.
// +kubebuilder:object:root=true
type ReceiverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Receiver `json:"items"`
}

// Receivers register themselves, so the kinds of other files keep their
// own registration.
func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &Receiver{}, &ReceiverList{})
		return nil
	})
}
