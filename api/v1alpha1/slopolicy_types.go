package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bypass annotations, written by `alertbridge slo bypass`.
const (
	BypassUntilAnnotation  = "ops.alertbridge.io/bypass-until"
	BypassReasonAnnotation = "ops.alertbridge.io/bypass-reason"
	BypassByAnnotation     = "ops.alertbridge.io/bypass-by"
)

// GateMode says what a breach does to the release gate.
// +kubebuilder:validation:Enum=Strict;Warn;Off
type GateMode string

// Gate modes.
const (
	GateStrict GateMode = "Strict"
	GateWarn   GateMode = "Warn"
	GateOff    GateMode = "Off"
)

// NoDataPolicy says what a quiet service (empty or NaN result) gets.
// +kubebuilder:validation:Enum=Block;Allow
type NoDataPolicy string

// NoData policies.
const (
	NoDataBlock NoDataPolicy = "Block"
	NoDataAllow NoDataPolicy = "Allow"
)

// GateDecision is what release controllers act on.
// +kubebuilder:validation:Enum=Allow;Warn;Block
type GateDecision string

// Gate decisions.
const (
	DecisionAllow GateDecision = "Allow"
	DecisionWarn  GateDecision = "Warn"
	DecisionBlock GateDecision = "Block"
)

// SLOPolicy condition types and reasons.
const (
	SLOConditionReady          = "Ready"
	SLOConditionSLOMet         = "SLOMet"
	SLOConditionReleaseAllowed = "ReleaseAllowed"

	ReasonWithinObjectives   = "WithinObjectives"
	ReasonLatencyP95Exceeded = "LatencyP95Exceeded"
	ReasonErrorRateExceeded  = "ErrorRateExceeded"
	ReasonOpenIncident       = "OpenIncident"
	ReasonNoData             = "NoData"
	ReasonSourceUnavailable  = "SourceUnavailable"
	ReasonBypassed           = "Bypassed"
	ReasonStale              = "Stale"
)

// SLOObjectives are the instant thresholds (a breach is observed >
// objective) and the error-budget objectives.
// +kubebuilder:validation:XValidation:rule="has(self.latencyP95Ms) || has(self.errorRatePercent) || has(self.availability) || has(self.latency)",message="spec.objectives needs latencyP95Ms, errorRatePercent, availability or latency"
type SLOObjectives struct {
	// latencyP95Ms is the p95 latency objective in milliseconds.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600000
	LatencyP95Ms *int64 `json:"latencyP95Ms,omitempty"`

	// errorRatePercent is the error-rate objective in percent, a decimal
	// string such as "1.0" (no floats in the API).
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^(100(\.0+)?|[0-9]{1,2}(\.[0-9]{1,6})?)$`
	ErrorRatePercent *string `json:"errorRatePercent,omitempty"`

	// availability is an error-budget objective on the share of requests
	// that do not fail.
	// +optional
	Availability *AvailabilityObjective `json:"availability,omitempty"`

	// latency is an error-budget objective on the share of requests faster
	// than a threshold.
	// +optional
	Latency *LatencyObjective `json:"latency,omitempty"`
}

// PrometheusSource is a Prometheus-compatible HTTP API (Prometheus, Thanos,
// Mimir, VictoriaMetrics).
type PrometheusSource struct {
	// url of the API root, e.g. http://prometheus:9090.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https')",message="spec.source.prometheus.url must be an http or https URL"
	URL string `json:"url"`

	// latencyP95Query overrides the default PromQL; it must return seconds.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LatencyP95Query string `json:"latencyP95Query,omitempty"`

	// errorRateQuery overrides the default PromQL; it must return a 0..1 ratio.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	ErrorRateQuery string `json:"errorRateQuery,omitempty"`

	// secretRef names a Secret with keys token, username/password, ca.crt,
	// and header.<Name> for extra headers (e.g. header.X-Scope-OrgID). Who
	// sets or changes it, or changes what is queried with it, must be
	// allowed to get that Secret (admission policy
	// alertbridge-slopolicy-credentials). The operator reads it only if the
	// namespace grants it (the ClusterRole alertbridge-credentials bound to
	// the operator there; the condition CredentialsAvailable says so). The
	// credentials go to url's origin only, never along a redirect to
	// another; a Secret of type kubernetes.io/service-account-token is
	// never sent.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// SLOSource says where SLIs come from.
type SLOSource struct {
	// prometheus is a Prometheus-compatible query API.
	// +required
	Prometheus PrometheusSource `json:"prometheus"`
}

// GateSpec says how the release gate treats the SLO.
type GateSpec struct {
	// mode: Strict blocks on breach or an unreachable source; Warn allows
	// but reports; Off always allows.
	// +optional
	// +kubebuilder:default=Strict
	Mode GateMode `json:"mode,omitempty"`

	// noData decides what a quiet service gets.
	// +optional
	// +kubebuilder:default=Block
	NoData NoDataPolicy `json:"noData,omitempty"`

	// blockOnOpenIncidents blocks while the service has an open Incident of
	// this severity or worse.
	// +optional
	BlockOnOpenIncidents *Severity `json:"blockOnOpenIncidents,omitempty"`

	// maxBypass caps how long an emergency bypass may last, at most 168h: a
	// bypass is for an emergency (a weekend or a holiday week at the
	// longest); a longer exception is a change of spec.gate.mode, which
	// needs the right to update the policy. A value stored before this
	// bound may stay as it is.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="(oldSelf.hasValue() && oldSelf.value() == self) || duration(self) <= duration('168h')",message="spec.gate.maxBypass must be at most 168h (a week); for a longer exception change spec.gate.mode",optionalOldSelf=true
	MaxBypass *metav1.Duration `json:"maxBypass,omitempty"`

	// minErrorBudgetPercent blocks while less than this share of an
	// objective's error budget is left, a decimal string such as "10".
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^(100(\.0+)?|[0-9]{1,2}(\.[0-9]{1,6})?)$`
	MinErrorBudgetPercent *string `json:"minErrorBudgetPercent,omitempty"`

	// blockOnBurn blocks while an objective's page (or also its ticket)
	// burn-rate condition holds; off ignores burning. Default page.
	// +optional
	BlockOnBurn *BurnCondition `json:"blockOnBurn,omitempty"`
}

// SLOPolicySpec defines the objectives and the release gate of a service.
type SLOPolicySpec struct {
	// service whose releases the gate guards.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service"`

	// env of the service.
	// +optional
	// +kubebuilder:default=prod
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Env string `json:"env,omitempty"`

	// objectives are the SLO thresholds.
	// +required
	Objectives SLOObjectives `json:"objectives"`

	// source of the SLIs.
	// +required
	Source SLOSource `json:"source"`

	// alerting configures the burn-rate Alerts of the error-budget
	// objectives (slo_burn); unset means the SRE workbook's windows.
	// +optional
	Alerting *BurnRateAlerting `json:"alerting,omitempty"`

	// gate configures the release gate.
	// +optional
	// +kubebuilder:default={}
	Gate GateSpec `json:"gate,omitempty"`

	// evaluationInterval between evaluations, at least 15s, so that one
	// policy cannot make the operator a load generator against its source.
	// A shorter value stored before this bound may stay as it is.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="(oldSelf.hasValue() && oldSelf.value() == self) || duration(self) >= duration('15s')",message="spec.evaluationInterval must be at least 15s",optionalOldSelf=true
	EvaluationInterval *metav1.Duration `json:"evaluationInterval,omitempty"`
}

// ObservedSLIs are the last evaluated values, as decimal strings.
type ObservedSLIs struct {
	// latencyP95Ms observed, in milliseconds.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	LatencyP95Ms string `json:"latencyP95Ms,omitempty"`
	// errorRatePercent observed, in percent.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ErrorRatePercent string `json:"errorRatePercent,omitempty"`
}

// GateStatus is the release decision.
type GateStatus struct {
	// decision: Allow, Warn or Block.
	// +optional
	Decision GateDecision `json:"decision,omitempty"`
	// reason, CamelCase (WithinObjectives, LatencyP95Exceeded, …).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// message explains the reason.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// since is when the decision last changed.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// BypassStatus reports the emergency bypass.
type BypassStatus struct {
	// active is true while a valid bypass is in force.
	// +optional
	Active bool `json:"active,omitempty"`
	// until is when it ends (capped by maxBypass).
	// +optional
	Until *metav1.Time `json:"until,omitempty"`
	// requestedUntil is the bypass-until annotation this bypass was granted
	// for; a new value is a new bypass, the same value keeps its cap.
	// +optional
	RequestedUntil *metav1.Time `json:"requestedUntil,omitempty"`
	// reason given for it.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
	// by names who set it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	By string `json:"by,omitempty"`
}

// SLOPolicyStatus is the evaluated SLO and the release gate.
type SLOPolicyStatus struct {
	// observedGeneration is the generation last evaluated.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, SLOMet, ReleaseAllowed, and CredentialsAvailable
	// while spec.source.prometheus.secretRef is set.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastEvaluatedAt is when the source was last queried.
	// +optional
	LastEvaluatedAt *metav1.Time `json:"lastEvaluatedAt,omitempty"`

	// observed SLIs.
	// +optional
	Observed *ObservedSLIs `json:"observed,omitempty"`

	// gate is the release decision.
	// +optional
	Gate *GateStatus `json:"gate,omitempty"`

	// bypass is the emergency bypass state.
	// +optional
	Bypass *BypassStatus `json:"bypass,omitempty"`

	// errorBudgetRemainingPercent is the least budget left of the
	// error-budget objectives, in percent.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ErrorBudgetRemainingPercent string `json:"errorBudgetRemainingPercent,omitempty"`

	// objectives are the error-budget objectives as last evaluated.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=2
	Objectives []ObjectiveStatus `json:"objectives,omitempty"`

	// burnAlerts are the slo_burn Alerts firing for this policy.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4
	BurnAlerts []BurnAlertStatus `json:"burnAlerts,omitempty"`
}

// SLOPolicy evaluates a service's SLOs and publishes a release gate.
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=slo,categories=alertbridge
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service`
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.env`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.gate.mode`
// +kubebuilder:printcolumn:name="Decision",type=string,JSONPath=`.status.gate.decision`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.gate.reason`
// +kubebuilder:printcolumn:name="Budget",type=string,JSONPath=`.status.errorBudgetRemainingPercent`
// +kubebuilder:printcolumn:name="Evaluated",type=date,JSONPath=`.status.lastEvaluatedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SLOPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the SLO and gate configuration.
	// +required
	Spec SLOPolicySpec `json:"spec"`

	// status is the evaluation and gate.
	// +optional
	Status SLOPolicyStatus `json:"status,omitempty"`
}

// SLOPolicyList contains a list of SLOPolicy.
// +kubebuilder:object:root=true
type SLOPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SLOPolicy `json:"items"`
}
