package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertPhase is where an Alert stands in the work queue.
// +kubebuilder:validation:Enum=New;Processing;Acked;Failed;Deduplicated
type AlertPhase string

// Alert phases; see the transition table in the design.
const (
	AlertNew          AlertPhase = "New"
	AlertProcessing   AlertPhase = "Processing"
	AlertAcked        AlertPhase = "Acked"
	AlertFailed       AlertPhase = "Failed"
	AlertDeduplicated AlertPhase = "Deduplicated"
)

// Absorbing reports whether an Alert in this phase folds in new duplicates.
func (p AlertPhase) Absorbing() bool {
	return p == AlertNew || p == AlertProcessing || p == AlertFailed
}

// Alert condition types and reasons.
const (
	// AlertConditionDeduplicated is True on an Alert folded into a canonical.
	AlertConditionDeduplicated = "Deduplicated"
	// AlertConditionClaimed is True while an agent holds a live lease.
	AlertConditionClaimed = "Claimed"
	// AlertConditionResolved is True once the source said the alert is over.
	AlertConditionResolved = "Resolved"
	// AlertConditionSilenced is True while an active Silence matches the
	// Alert: it is counted, but not claimable, not converted and not
	// notified. Its message names the Silence.
	AlertConditionSilenced = "Silenced"

	ReasonFolded           = "FoldedIntoCanonical"
	ReasonLeaseHeld        = "LeaseHeld"
	ReasonLeaseExpired     = "LeaseExpired"
	ReasonLeaseClamped     = "LeaseClamped"
	ReasonAcked            = "Acked"
	ReasonFailed           = "Failed"
	ReasonRetryDue         = "RetryDue"
	ReasonResolvedAtSource = "ResolvedAtSource"
	ReasonRequeued         = "Requeued"
)

// AlertSpec is one firing as a monitor reported it. It is immutable: a
// repeat is a new Alert that the controller folds into the canonical one.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: an Alert records one firing; create a new Alert instead"
type AlertSpec struct {
	// service is the affected service, a DNS label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service"`

	// env is the environment the alert fired in.
	// +optional
	// +kubebuilder:default=prod
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Env string `json:"env,omitempty"`

	// kind classifies the alert (latency, error_rate, …); an
	// AlertRoutingPolicy may restrict the set.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_]{0,62}$`
	Kind string `json:"kind"`

	// severity from P0 (worst) to P4.
	// +optional
	// +kubebuilder:default=P3
	Severity Severity `json:"severity,omitempty"`

	// title is a one-line summary.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Title string `json:"title"`

	// message is the free-text body.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// source names the reporter, e.g. monitor@node1.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source,omitempty"`

	// labels distinguish firings of one service/env/kind (route, host, …)
	// and are part of the default fingerprint.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 63 && size(self[k]) <= 256)",message="spec.labels: keys must be at most 63 and values at most 256 characters"
	Labels map[string]string `json:"labels,omitempty"`

	// fingerprint overrides the computed fingerprint (a stable hash of
	// service, env, kind and sorted labels).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-A-Za-z0-9_.:/]*$`
	Fingerprint string `json:"fingerprint,omitempty"`

	// dedupeTTL is how long after the canonical's lastSeenAt a repeat still
	// folds into it; default from the AlertRoutingPolicy, else 30m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="spec.dedupeTTL must be between 1s and 720h"
	DedupeTTL *metav1.Duration `json:"dedupeTTL,omitempty"`
}

// AlertClaim is the lease an agent holds on a Processing Alert, shaped like
// coordination.k8s.io Lease. It stays after the lease ends as a record of
// the last holder; the phase says whether it is held. A lease ends when the
// operator returns the Alert to New, which it does on its own clock once
// renewTime + leaseDurationSeconds has passed: until then the holder may
// renew, ack or fail it (nobody else can have claimed it), and no client's
// clock decides otherwise. See docs/adr/lease-bounds.md.
type AlertClaim struct {
	// holderIdentity names the agent holding (or last holding) the lease:
	// the free-form owner name an agent loop goes by (e.g. triage-supervisor).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	HolderIdentity string `json:"holderIdentity"`

	// holderUser is the Kubernetes user who claimed the Alert. The API
	// server sets the rules: a claim must name the requesting user, and
	// only this user may renew, ack or fail the Alert while it is
	// Processing (see config/admission).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	HolderUser string `json:"holderUser,omitempty"`

	// acquireTime is when the current holder took the lease, in UTC with
	// microseconds as every Kubernetes client writes a MicroTime (any other
	// spelling would make the Alert unreadable to them). A claim writes it
	// equal to renewTime, and a renewal leaves it alone.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`
	AcquireTime metav1.MicroTime `json:"acquireTime"`

	// renewTime is when the holder last renewed; the lease ends at
	// renewTime + leaseDurationSeconds. Written like acquireTime; a renewal
	// never moves it back. The API server has no clock to judge it by, so
	// the operator does: a renewTime more than a few seconds ahead of the
	// operator's clock is moved back to it (acquireTime with it when that
	// is later still), the lease never ending later for it (Warning Event
	// LeaseClamped, said in the Claimed condition).
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`
	RenewTime metav1.MicroTime `json:"renewTime"`

	// leaseDurationSeconds is the lock TTL, at most the namespace's
	// AlertRoutingPolicy spec.maxLeaseDuration (1h without a policy). The
	// API server refuses a claim or renewal asking for more where a policy
	// exists; the operator shortens a longer lease where none does.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	LeaseDurationSeconds int32 `json:"leaseDurationSeconds"`

	// leaseTransitions counts the times the lease changed hands: a claim
	// writes the previous claim's count plus one (0 for the first claim).
	// +optional
	// +kubebuilder:validation:Minimum=0
	LeaseTransitions int32 `json:"leaseTransitions,omitempty"`
}

// AlertAck records who closed an Alert and why.
type AlertAck struct {
	// by names who acked.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	By string `json:"by"`

	// note says why, e.g. "false positive" or "resolved at source".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Note string `json:"note,omitempty"`

	// at is when it was acked.
	// +required
	At metav1.Time `json:"at"`
}

// AlertRequeue records who last moved the Alert back to New by hand (the
// virtual verb requeue on alerts/status) and why: a Processing Alert whose
// holder hangs (the lease is released, the claim cleared) or a Failed one
// to retry now.
type AlertRequeue struct {
	// by names who requeued; the API server requires it to be the
	// requesting user.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	By string `json:"by"`

	// reason says why, e.g. "worker hung on INC-42".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`

	// at is when it was requeued.
	// +required
	At metav1.Time `json:"at"`
}

// Who writes each field of AlertStatus. Every writer goes through one
// path, alertstate.Writer: a merge patch under the resourceVersion it read,
// so writers of the same field never overwrite each other, they conflict
// and decide again. "Controller" is the operator's Alert controller,
// "intake" the counting of HTTP, Alertmanager and SLO-burn occurrences on
// the fingerprint's owner, "claimer" an agent (CLI, HTTP API, MCP, Go
// client) holding or taking the lease, "conversion" whoever converts the
// Alert into an Incident (a person, an agent, the auto-incident controller),
// "requeuer" a user with the virtual verb requeue on alerts/status (on-call).
//
//	field                       written by
//	observedGeneration          controller
//	conditions Deduplicated     controller
//	conditions Silenced         controller
//	conditions Claimed          claimer; controller when a lease ends or is shortened;
//	                            requeuer
//	conditions Resolved         intake
//	phase                       controller: the first decision (New or Deduplicated),
//	                            and Processing or Failed back to New on its timers;
//	                            claimer: New to Processing, Processing to Acked or Failed;
//	                            requeuer: Processing or Failed to New (with requeued)
//	                            intake: to Acked when the source resolves an unheld Alert
//	fingerprint, firstSeenAt    controller (first decision)
//	occurrences, lastSeenAt,    intake (occurrences it counts);
//	ingestKeys                  controller (duplicates created as Alerts, which it folds)
//	firing                      intake; controller for an Alert a firing created
//	duplicateOf, pendingFolds   controller
//	claim, attempts             claimer; controller shortens a lease (claim only);
//	                            requeuer clears the claim (attempts stays)
//	requeued                    requeuer
//	lastError, retryAfter       claimer (fail)
//	ack                         claimer (ack); intake (resolved at source)
//	resolvedAt                  intake
//	incidentRef                 conversion

// AlertStatus is the observed state of an Alert.
// +kubebuilder:validation:XValidation:rule="!has(self.phase) || self.phase != 'Processing' || has(self.claim)",message="status.claim is required when status.phase is Processing",fieldPath=".claim"
// +kubebuilder:validation:XValidation:rule="!has(self.phase) || self.phase != 'Deduplicated' || (has(self.duplicateOf) && size(self.duplicateOf) > 0)",message="status.duplicateOf is required when status.phase is Deduplicated",fieldPath=".duplicateOf"
// +kubebuilder:validation:XValidation:rule="!has(self.phase) || self.phase != 'Acked' || has(self.ack)",message="status.ack is required when status.phase is Acked",fieldPath=".ack"
// +kubebuilder:validation:XValidation:rule="!has(self.phase) || self.phase != 'Failed' || has(self.retryAfter)",message="status.retryAfter is required when status.phase is Failed",fieldPath=".retryAfter"
type AlertStatus struct {
	// observedGeneration is the generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Claimed, Deduplicated, Silenced (while a Silence matches),
	// and Resolved when the source says so.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase is the work-queue state; empty until the controller's first
	// decision. Transitions outside the design's table are refused.
	// +optional
	Phase AlertPhase `json:"phase,omitempty"`

	// fingerprint is the effective fingerprint.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Fingerprint string `json:"fingerprint,omitempty"`

	// occurrences counts the firings folded into this Alert, itself included.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Occurrences int64 `json:"occurrences,omitempty"`

	// firstSeenAt is when the first firing was created.
	// +optional
	FirstSeenAt *metav1.Time `json:"firstSeenAt,omitempty"`

	// lastSeenAt is when the latest folded firing was created.
	// +optional
	LastSeenAt *metav1.Time `json:"lastSeenAt,omitempty"`

	// duplicateOf names the canonical Alert this one was folded into.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DuplicateOf string `json:"duplicateOf,omitempty"`

	// pendingFolds journals the UIDs of duplicates already counted in
	// occurrences but not yet marked Deduplicated, so that a crash between
	// the two writes neither loses nor doubles an occurrence.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=64
	PendingFolds []string `json:"pendingFolds,omitempty"`

	// ingestKeys holds the hashed idempotency keys (HTTP Idempotency-Key
	// headers, Alertmanager firing instances, each scoped to its caller)
	// counted into this Alert in the last five minutes, one entry per minute
	// ("<unix minute>:" and the minute's 16-character keys), so a retried
	// request or a re-sent firing counts once, also across operator
	// restarts. At most 8192 keys are kept.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=6
	// +kubebuilder:validation:items:MaxLength=131100
	IngestKeys []string `json:"ingestKeys,omitempty"`

	// claim is the current (or last) lease.
	// +optional
	Claim *AlertClaim `json:"claim,omitempty"`

	// attempts counts claims so far.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempts int32 `json:"attempts,omitempty"`

	// lastError is what the last fail reported.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LastError string `json:"lastError,omitempty"`

	// retryAfter is when a Failed Alert becomes New again.
	// +optional
	RetryAfter *metav1.Time `json:"retryAfter,omitempty"`

	// ack records who acked the Alert and why.
	// +optional
	Ack *AlertAck `json:"ack,omitempty"`

	// requeued records the last time someone moved the Alert back to New
	// by hand (requeue): who, why and when. It stays as a record after the
	// Alert is claimed again.
	// +optional
	Requeued *AlertRequeue `json:"requeued,omitempty"`

	// resolvedAt is when the source said the alert is over.
	// +optional
	ResolvedAt *metav1.Time `json:"resolvedAt,omitempty"`

	// incidentRef names the Incident this Alert was converted into.
	// +optional
	IncidentRef *LocalObjectReference `json:"incidentRef,omitempty"`

	// firing tracks the Alertmanager firing instances counted into this
	// Alert, so that it is resolved at source only when all of them are.
	// +optional
	Firing *AlertFiring `json:"firing,omitempty"`
}

// MaxFiringInstances bounds status.firing.instances.
const MaxFiringInstances = 64

// AlertFiring is the resolution state of the Alertmanager firing instances
// (an Alertmanager fingerprint and startsAt, sent by one caller) counted into
// an Alert. The source resolves the Alert only when every occurrence came
// from such an instance and every one of them has resolved.
type AlertFiring struct {
	// instances are hashes of the instances still firing.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	Instances []string `json:"instances,omitempty"`

	// untracked counts instances that fired while instances was full; their
	// resolution cannot be told apart, so the source no longer resolves the
	// Alert: an agent or on-call acks it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Untracked int64 `json:"untracked,omitempty"`

	// resolved counts instances that fired and then resolved.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Resolved int64 `json:"resolved,omitempty"`
}

// Alert is one alert firing, deduplicated by fingerprint and worked through
// the New → Processing → Acked state machine.
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=alrt,categories=alertbridge
// +kubebuilder:selectablefield:JSONPath=`.status.phase`
// +kubebuilder:selectablefield:JSONPath=`.status.fingerprint`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service`
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.env`,priority=1
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.kind`,priority=1
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.spec.severity`
// +kubebuilder:printcolumn:name="Occurrences",type=integer,JSONPath=`.status.occurrences`
// +kubebuilder:printcolumn:name="Holder",type=string,JSONPath=`.status.claim.holderIdentity`
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.status.claim.holderUser`,priority=1
// +kubebuilder:printcolumn:name="Title",type=string,JSONPath=`.spec.title`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || (has(self.status) && has(self.status.phase))",message="status.phase: once set, the phase cannot be removed",fieldPath=".status"
// +kubebuilder:validation:XValidation:rule="(has(oldSelf.status) && has(oldSelf.status.phase)) || !has(self.status) || !has(self.status.phase) || self.status.phase in ['New', 'Deduplicated']",messageExpression="'status.phase: the first phase of an Alert must be New or Deduplicated, not ' + self.status.phase",fieldPath=".status"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || !has(self.status) || !has(self.status.phase) || self.status.phase == oldSelf.status.phase || (oldSelf.status.phase == 'New' && self.status.phase in ['Processing', 'Acked', 'Deduplicated']) || (oldSelf.status.phase == 'Processing' && self.status.phase in ['New', 'Acked', 'Failed']) || (oldSelf.status.phase == 'Failed' && self.status.phase in ['New', 'Acked'])",messageExpression="'status.phase: transition from ' + oldSelf.status.phase + ' to ' + self.status.phase + ' is not allowed'",fieldPath=".status"
type Alert struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the firing as reported.
	// +required
	Spec AlertSpec `json:"spec"`

	// status is what the controller and agents observed and decided.
	// +optional
	Status AlertStatus `json:"status,omitempty"`
}

// AlertList contains a list of Alert.
// +kubebuilder:object:root=true
type AlertList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Alert `json:"items"`
}
