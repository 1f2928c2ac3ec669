package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MatchOperator compares an Alert's label with a matcher's value, with
// Alertmanager's meaning: = equal, != not equal, =~ the value (a Go RE2
// regular expression, anchored at both ends) matches, !~ it does not.
// +kubebuilder:validation:Enum="=";"!=";"=~";"!~"
type MatchOperator string

// Match operators.
const (
	MatchEqual     MatchOperator = "="
	MatchNotEqual  MatchOperator = "!="
	MatchRegexp    MatchOperator = "=~"
	MatchNotRegexp MatchOperator = "!~"
)

// Bounds of a Silence, shared by the CRD rules, the operator and the CLI.
const (
	// MaxSilenceMatchers bounds spec.matchers.
	MaxSilenceMatchers = 16
	// MaxSilenceDuration is the absolute bound of endsAt - startsAt; a
	// namespace's AlertRoutingPolicy spec.silences.maxDuration may only
	// lower it.
	MaxSilenceDuration = "720h"
	// DefaultSilenceMaxDuration applies when the namespace's policy sets no
	// spec.silences.maxDuration.
	DefaultSilenceMaxDuration = "168h"
)

// SilenceMatcher is one label matcher, as in Alertmanager's
// /api/v2/silences (where isEqual and isRegex say what operator says here).
// An Alert's labels, for matching, are its spec.labels plus service, env,
// kind, severity, alertname (= kind) and namespace.
// +kubebuilder:validation:XValidation:rule="!(self.operator in ['=~', '!~']) || \"\".matches('^(?:' + self.value + ')$') || !\"\".matches('^(?:' + self.value + ')$')",message="value must be a valid regular expression (Go RE2 syntax) for the operators =~ and !~"
type SilenceMatcher struct {
	// name of the label, e.g. service or route.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[^\s"{}=!~,]+$`
	Name string `json:"name"`

	// operator: "=", "!=", "=~" or "!~" (quote it in YAML: "!" starts a tag).
	// +optional
	// +kubebuilder:default="="
	Operator MatchOperator `json:"operator,omitempty"`

	// value compared with the label; an absent label has the value "", so
	// env="" matches Alerts without env and env!="" those with one.
	// +optional
	// +kubebuilder:default=""
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value,omitempty"`
}

// SilenceSpec is a maintenance window: the Alerts its matchers match are
// counted but not claimed, converted or notified from startsAt to endsAt.
// +kubebuilder:validation:XValidation:rule="!has(self.startsAt) || self.endsAt >= self.startsAt",message="spec.endsAt must not be before spec.startsAt",fieldPath=".endsAt"
// +kubebuilder:validation:XValidation:rule="!has(self.startsAt) || self.endsAt - self.startsAt <= duration('720h')",message="spec.endsAt: a Silence lasts at most 720h (30 days) from spec.startsAt; the namespace's AlertRoutingPolicy spec.silences.maxDuration may allow less",fieldPath=".endsAt"
type SilenceSpec struct {
	// matchers select the Alerts of the namespace to silence; an Alert is
	// silenced when every matcher matches it. At least one must not match
	// the empty string, as in Alertmanager, so no Silence silences everything.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.exists(m, m.operator == '=' ? m.value != '' : m.operator == '!=' ? m.value == '' : m.operator == '=~' ? !\"\".matches('^(?:' + m.value + ')$') : \"\".matches('^(?:' + m.value + ')$'))",message="spec.matchers: at least one matcher must not match the empty string (as in Alertmanager), or the Silence would silence every Alert of the namespace"
	Matchers []SilenceMatcher `json:"matchers"`

	// startsAt is when the Silence takes effect; absent means at its
	// creation.
	// +optional
	StartsAt *metav1.Time `json:"startsAt,omitempty"`

	// endsAt is when it ends (required); at most the namespace's
	// AlertRoutingPolicy spec.silences.maxDuration (default 168h) after
	// startsAt, and never more than 720h. `alertbridge silences expire`
	// sets it to now.
	// +required
	EndsAt metav1.Time `json:"endsAt"`

	// comment says why, e.g. "deploy of gateway 1.42".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Comment string `json:"comment"`

	// createdBy is the Kubernetes user who created the Silence. The API
	// server fills it in when absent and refuses any other name (admission
	// policies alertbridge-silence-created-by); it never changes.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.createdBy is immutable: it records who created the Silence"
	CreatedBy string `json:"createdBy"`
}

// SilenceState is where a Silence stands in time.
// +kubebuilder:validation:Enum=Pending;Active;Expired;Invalid
type SilenceState string

// Silence states. Invalid: the operator does not apply it (see the Accepted
// condition).
const (
	SilencePending SilenceState = "Pending"
	SilenceActive  SilenceState = "Active"
	SilenceExpired SilenceState = "Expired"
	SilenceInvalid SilenceState = "Invalid"
)

// Silence condition types and reasons.
const (
	// SilenceConditionAccepted is True when the operator applies the
	// Silence: its matchers compile and its window is within the
	// namespace's maximum.
	SilenceConditionAccepted = "Accepted"

	ReasonSilenceValid = "Valid"
	// ReasonSilenceActive and ReasonSilenceEnded are the reasons of an
	// Alert's Silenced condition (True, then False once no Silence matches).
	ReasonSilenceActive  = "SilenceActive"
	ReasonSilenceEnded   = "SilenceEnded"
	ReasonInvalidMatcher = "InvalidMatcher"
	ReasonTooLong        = "TooLong"
)

// SilenceStatus is what the operator observed.
type SilenceStatus struct {
	// observedGeneration is the generation the operator last judged.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Accepted.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// state is Pending before startsAt, Active until endsAt, then Expired;
	// Invalid when the operator does not apply it (see Accepted).
	// +optional
	State SilenceState `json:"state,omitempty"`

	// matchers are spec.matchers in Alertmanager's syntax, e.g.
	// {service="gateway", env=~"prod|staging"}.
	// +optional
	// +kubebuilder:validation:MaxLength=20000
	Matchers string `json:"matchers,omitempty"`

	// startsAt is the effective start: spec.startsAt, else the creation time.
	// +optional
	StartsAt *metav1.Time `json:"startsAt,omitempty"`
}

// Silence mutes the Alerts of its namespace that its matchers match, from
// startsAt to endsAt, the way an Alertmanager silence does: they are still
// ingested, deduplicated and counted, and carry the condition Silenced, but
// nobody claims, converts or notifies them until the Silence ends.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sil,categories=alertbridge
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Matchers",type=string,JSONPath=`.status.matchers`
// +kubebuilder:printcolumn:name="CreatedBy",type=string,JSONPath=`.spec.createdBy`
// +kubebuilder:printcolumn:name="StartsAt",type=string,JSONPath=`.status.startsAt`,priority=1
// +kubebuilder:printcolumn:name="EndsAt",type=string,JSONPath=`.spec.endsAt`
// +kubebuilder:printcolumn:name="Comment",type=string,JSONPath=`.spec.comment`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Silence struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the window and what it silences.
	// +required
	Spec SilenceSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status SilenceStatus `json:"status,omitempty"`
}

// SilenceList contains a list of Silence.
// +kubebuilder:object:root=true
type SilenceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Silence `json:"items"`
}
