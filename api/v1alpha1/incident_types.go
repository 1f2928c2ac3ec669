package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IncidentState is set by people and agents; the controller enforces the
// transitions through CEL and records their timestamps.
// +kubebuilder:validation:Enum=Open;Mitigating;Resolved;Closed
type IncidentState string

// Incident states.
const (
	IncidentOpen       IncidentState = "Open"
	IncidentMitigating IncidentState = "Mitigating"
	IncidentResolved   IncidentState = "Resolved"
	IncidentClosed     IncidentState = "Closed"
)

// IsOpen reports whether the state counts as open (Open or Mitigating).
func (s IncidentState) IsOpen() bool { return s == IncidentOpen || s == IncidentMitigating }

// Incident condition types and reasons.
const (
	// IncidentConditionReady is True once the controller recorded the
	// current spec.state; its reason is the state.
	IncidentConditionReady = "Ready"
	// IncidentConditionTriageConfigured says whether the last triage run had
	// an action to carry out.
	IncidentConditionTriageConfigured = "TriageConfigured"

	ReasonJobCreated               = "JobCreated"
	ReasonWebhookDelivered         = "WebhookDelivered"
	ReasonJobAndWebhook            = "JobCreatedAndWebhookDelivered"
	ReasonNoTriageAction           = "NoTriageActionConfigured"
	ReasonServiceAccountNotAllowed = "ServiceAccountNotAllowed"
	ReasonInvalidJobTemplate       = "InvalidJobTemplate"
	ReasonWebhookFailed            = "WebhookFailed"
	// ReasonWebhookRetrying: the run's webhook delivery failed and is
	// retried at status.triage.webhook.nextAttemptAt.
	ReasonWebhookRetrying = "WebhookRetrying"
)

// TimelineType classifies an Incident timeline entry.
// +kubebuilder:validation:Enum=Opened;AlertAppended;TriageStarted;StateChanged;Note;Closed;Summary
type TimelineType string

// Timeline entry types.
const (
	TimelineOpened        TimelineType = "Opened"
	TimelineAlertAppended TimelineType = "AlertAppended"
	TimelineTriageStarted TimelineType = "TriageStarted"
	TimelineStateChanged  TimelineType = "StateChanged"
	TimelineNote          TimelineType = "Note"
	TimelineClosed        TimelineType = "Closed"
	// TimelineSummary stands for consecutive entries folded into one while
	// the timeline was at its cap and PostgreSQL had not recorded them
	// (status.timeline[].summary says which and how many).
	TimelineSummary TimelineType = "Summary"
)

// IncidentSpec is the incident as people and agents steer it.
// +kubebuilder:validation:XValidation:rule="self.service == oldSelf.service && self.env == oldSelf.env",message="spec.service and spec.env are immutable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.signature) || (has(self.signature) && self.signature == oldSelf.signature)",message="spec.signature is immutable once set",fieldPath=".signature"
// +kubebuilder:validation:XValidation:rule="self.state != 'Closed' || (has(self.note) && size(self.note.trim()) > 0)",message="spec.note is required to close an Incident",fieldPath=".note"
// +kubebuilder:validation:XValidation:rule="self.state == oldSelf.state || (oldSelf.state == 'Open' && self.state in ['Mitigating', 'Resolved', 'Closed']) || (oldSelf.state == 'Mitigating' && self.state in ['Open', 'Resolved', 'Closed']) || (oldSelf.state == 'Resolved' && self.state in ['Open', 'Closed'])",messageExpression="'spec.state: transition from ' + oldSelf.state + ' to ' + self.state + ' is not allowed'",fieldPath=".state"
type IncidentSpec struct {
	// service is the affected service, a DNS label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service"`

	// env is the environment.
	// +optional
	// +kubebuilder:default=prod
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Env string `json:"env,omitempty"`

	// severity of the incident, P0 (worst) to P4.
	// +optional
	// +kubebuilder:default=P3
	Severity Severity `json:"severity,omitempty"`

	// title is a one-line summary.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Title string `json:"title"`

	// signature groups alerts into this incident; default from the first
	// alert: service/env/kind plus the policy's signatureLabels.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Signature string `json:"signature,omitempty"`

	// state: Open ↔ Mitigating → Resolved → Closed; Resolved → Open
	// reopens; Closed is terminal.
	// +optional
	// +kubebuilder:default=Open
	State IncidentState `json:"state,omitempty"`

	// note is free text; required to close.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Note string `json:"note,omitempty"`
}

// TimelineEntry is one record of an Incident's history. It carries no CEL
// rule: the timeline holds up to 1000 entries and a per-entry rule doubles
// the cost of every status write (measured). Who may append which entries
// is the admission policy alertbridge-incident-status's to judge: users
// append Note and AlertAppended entries in their own name; the operator
// writes the rest, and alone trims and folds.
type TimelineEntry struct {
	// seq numbers entries within the Incident; with the UID it is the
	// mirror's unique key.
	// +required
	// +kubebuilder:validation:Minimum=1
	Seq int64 `json:"seq"`

	// at is when it happened, in UTC with microseconds as every Kubernetes
	// client writes a MicroTime.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`
	At metav1.MicroTime `json:"at"`

	// type of the entry.
	// +required
	Type TimelineType `json:"type"`

	// message says what happened.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// alertRef names the Alert involved, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	AlertRef string `json:"alertRef,omitempty"`

	// author is the Kubernetes user who wrote the entry: the requesting
	// user for entries users append (the admission policy makes it so),
	// the caller for entries the operator appends on a caller's behalf
	// over HTTP, and empty for the operator's own entries.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Author string `json:"author,omitempty"`

	// summary is set on a Summary entry: it stands for the entries
	// firstSeq..seq, which were folded into it before the mirror recorded
	// them. Its at is the time of the newest of them.
	// +optional
	Summary *SummarisedEntries `json:"summary,omitempty"`
}

// SummarisedEntries says which entries a Summary entry stands for.
type SummarisedEntries struct {
	// count is how many entries the summary stands for.
	// +required
	// +kubebuilder:validation:Minimum=1
	Count int64 `json:"count"`

	// firstSeq is the seq of the oldest entry summarised; the summary's own
	// seq is that of the newest, so the mirror writes it once.
	// +required
	// +kubebuilder:validation:Minimum=1
	FirstSeq int64 `json:"firstSeq"`

	// firstAt is when the oldest entry summarised happened.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`
	FirstAt metav1.MicroTime `json:"firstAt"`
}

// TriageStatus is the per-signature triage cooldown state; only the
// operator writes it.
type TriageStatus struct {
	// lastTriageAt is when triage last ran for this signature.
	// +optional
	LastTriageAt *metav1.Time `json:"lastTriageAt,omitempty"`

	// cooldownUntil: no new triage run for this signature before this time.
	// +optional
	CooldownUntil *metav1.Time `json:"cooldownUntil,omitempty"`

	// observedAlertCount is the status.alertCount the operator last decided
	// triage for: the Alert refs appended above it are new to it. Only the
	// operator writes it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ObservedAlertCount int64 `json:"observedAlertCount,omitempty"`

	// runs counts triage runs for this Incident.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Runs int32 `json:"runs,omitempty"`

	// lastRunRef names the last triage run (a Job name, or the webhook run
	// id); the operator derives it from the Incident's name and runs.
	// +optional
	LastRunRef *LocalObjectReference `json:"lastRunRef,omitempty"`

	// lastRunAlertRef names the Alert that started the last triage run.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	LastRunAlertRef string `json:"lastRunAlertRef,omitempty"`

	// dispatchedRuns counts the runs whose action (Job, webhook, or the
	// record that none is configured) the controller has carried out; a run
	// above it is still to be dispatched.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DispatchedRuns int32 `json:"dispatchedRuns,omitempty"`

	// webhook is the delivery of the last run to the policy's webhook:
	// one POST per attempt, attempts spaced by a capped exponential
	// backoff, until delivered or the attempts are spent.
	// +optional
	Webhook *WebhookDelivery `json:"webhook,omitempty"`
}

// WebhookDelivery records the delivery of one triage run to the webhook.
// Neither deliveredAt nor nextAttemptAt set means the controller gave up
// (the TriageConfigured condition says WebhookFailed).
type WebhookDelivery struct {
	// run names the triage run delivered; it is the Idempotency-Key header
	// of every attempt.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Run string `json:"run"`

	// attempts counts the POSTs made for the run.
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
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`

	// nextAttemptAt is when the next POST is due while the run is not
	// delivered.
	// +optional
	NextAttemptAt *metav1.Time `json:"nextAttemptAt,omitempty"`

	// deliveredAt is when the webhook accepted the run (a 2xx answer).
	// +optional
	DeliveredAt *metav1.Time `json:"deliveredAt,omitempty"`
}

// IncidentStatus is the observed state of an Incident. Others than the
// operator may only append Alert refs (alertRefs, alertCount) and timeline
// entries they author (timeline, timelineSeq): the admission policy
// alertbridge-incident-status keeps every other field as the operator
// wrote it.
type IncidentStatus struct {
	// observedGeneration is the generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, TriageConfigured.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedState is the spec.state the controller last recorded; a
	// different spec.state is a transition still to be recorded.
	// +optional
	ObservedState IncidentState `json:"observedState,omitempty"`

	// +optional
	OpenedAt *metav1.Time `json:"openedAt,omitempty"`
	// +optional
	MitigatingAt *metav1.Time `json:"mitigatingAt,omitempty"`
	// +optional
	ResolvedAt *metav1.Time `json:"resolvedAt,omitempty"`
	// +optional
	ClosedAt *metav1.Time `json:"closedAt,omitempty"`
	// lastActivityAt is when the operator last saw the Incident change
	// (opened, a state change, Alert refs or timeline entries it had not
	// seen), on its own clock.
	// +optional
	LastActivityAt *metav1.Time `json:"lastActivityAt,omitempty"`

	// alertRefs names the newest linked Alerts (at most 100). Users append
	// to it; the operator triages on the refs it has not seen yet, if the
	// Alert's status.incidentRef names this Incident.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	AlertRefs []string `json:"alertRefs,omitempty"`

	// alertCount counts every Alert ever linked, exactly.
	// +optional
	// +kubebuilder:validation:Minimum=0
	AlertCount int64 `json:"alertCount,omitempty"`

	// triage is the cooldown state of this Incident's signature.
	// +optional
	Triage *TriageStatus `json:"triage,omitempty"`

	// timeline holds the newest entries; with the mirror on, entries not yet
	// mirrored are kept past the newest 100. Users only append; the operator
	// trims and folds, in its own writes: past 900 entries (or 460 KiB) it
	// folds the oldest unmirrored entries into one Summary entry, which
	// leaves users 100 entries of room below this cap between two of its
	// writes.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Timeline []TimelineEntry `json:"timeline,omitempty"`

	// timelineSeq is the seq of the newest timeline entry.
	// +optional
	TimelineSeq int64 `json:"timelineSeq,omitempty"`

	// observedTimelineSeq is the timelineSeq the operator last saw: entries
	// above it were appended by others since (it then moves
	// lastActivityAt). Only the operator writes it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ObservedTimelineSeq int64 `json:"observedTimelineSeq,omitempty"`

	// mirroredTimelineSeq is the highest timeline seq the PostgreSQL mirror
	// has written; with the mirror on, only entries at or below it are
	// trimmed from the bounded in-cluster timeline.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MirroredTimelineSeq int64 `json:"mirroredTimelineSeq,omitempty"`

	// postmortemRef names the ConfigMap holding the Markdown draft.
	// +optional
	PostmortemRef *LocalObjectReference `json:"postmortemRef,omitempty"`

	// notifications records the deliveries to the namespace's Receivers,
	// written by the operator only: the newest 32, always keeping each
	// Receiver's latest (which says what that Receiver was last told).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Notifications []IncidentNotification `json:"notifications,omitempty"`
}

// Incident groups alerts of one signature and records what was done.
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=inc,categories=alertbridge
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.spec.state`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service`
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.env`,priority=1
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.spec.severity`
// +kubebuilder:printcolumn:name="Alerts",type=integer,JSONPath=`.status.alertCount`
// +kubebuilder:printcolumn:name="Title",type=string,JSONPath=`.spec.title`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Incident struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the incident as steered by people and agents.
	// +required
	Spec IncidentSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status IncidentStatus `json:"status,omitempty"`
}

// IncidentList contains a list of Incident.
// +kubebuilder:object:root=true
type IncidentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Incident `json:"items"`
}
