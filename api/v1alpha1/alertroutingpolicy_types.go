package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Built-in defaults; a policy beats them, a CLI flag beats the policy.
const (
	DefaultDedupeTTL          = "30m"
	DefaultProcessingLockTTL  = "10m"
	DefaultMaxLeaseDuration   = "1h"
	DefaultRetryAfter         = "5m"
	DefaultTriageCooldown     = "15m"
	DefaultIncidentDedupe     = "60m"
	DefaultResolvedInCluster  = "24h"
	DefaultDatabaseRetention  = "720h"
	RoutingPolicyName         = "default"
	DefaultAlertmanagerSvcKey = "service"
)

// AutoIncident converts Alerts into Incidents without anyone asking.
type AutoIncident struct {
	// minOccurrences at which an Alert is converted; 0 turns it off.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MinOccurrences int64 `json:"minOccurrences,omitempty"`

	// minSeverity an Alert must have (or worse) to be converted.
	// +optional
	// +kubebuilder:default=P2
	MinSeverity Severity `json:"minSeverity,omitempty"`
}

// IncidentPolicy configures alert → incident conversion.
type IncidentPolicy struct {
	// severityCap: an incident is never worse than this.
	// +optional
	// +kubebuilder:default=P1
	SeverityCap Severity `json:"severityCap,omitempty"`

	// dedupeWindow: an open Incident active within this window absorbs alerts.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	DedupeWindow *metav1.Duration `json:"dedupeWindow,omitempty"`

	// auto conversion; off by default.
	// +optional
	Auto *AutoIncident `json:"auto,omitempty"`
}

// TriageWebhook is an HTTP endpoint that receives triage runs as JSON.
type TriageWebhook struct {
	// url to POST to.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self == '' || (isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https'))",message="spec.triage.webhook.url must be an http or https URL"
	URL string `json:"url,omitempty"`

	// secretRef names a Secret whose key token is sent as a bearer token.
	// Who sets or changes it, or changes url while it is set, must be
	// allowed to get that Secret (admission policy
	// alertbridge-routing-credentials). The operator reads it only if the
	// namespace grants it (the ClusterRole alertbridge-credentials bound to
	// the operator there). The token goes to url's origin only, never along
	// a redirect to another; a Secret of type
	// kubernetes.io/service-account-token is never sent.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// TriagePolicy says how triage runs.
type TriagePolicy struct {
	// serviceAccountName the triage Job runs as; the ServiceAccount must carry
	// the annotation ops.alertbridge.io/triage: "true". Who sets or changes
	// it must be allowed to create Jobs in the namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// jobTemplate is a batch/v1 JobTemplateSpec; the API server validates the
	// Job when the operator creates it. Who sets or changes it must be
	// allowed to create Jobs in the namespace (admission policy
	// alertbridge-routing-credentials): the operator creates for you only
	// what you could create yourself, and only if the namespace grants it
	// (the ClusterRole alertbridge-triage-jobs bound to the operator there).
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	JobTemplate *batchv1.JobTemplateSpec `json:"jobTemplate,omitempty"`

	// webhook receives triage runs.
	// +optional
	Webhook *TriageWebhook `json:"webhook,omitempty"`
}

// RetentionPolicy says how long finished records stay.
type RetentionPolicy struct {
	// resolvedInCluster: Acked/Deduplicated Alerts and Closed Incidents are
	// deleted this long after their terminal time (and once mirrored).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	ResolvedInCluster *metav1.Duration `json:"resolvedInCluster,omitempty"`

	// database: rows older than this are deleted in batches.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Database *metav1.Duration `json:"database,omitempty"`
}

// AlertmanagerMapping overrides how Alertmanager labels map to Alert fields.
type AlertmanagerMapping struct {
	// serviceLabel names the label holding the service (fallback: job).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	ServiceLabel string `json:"serviceLabel,omitempty"`

	// severityMap maps the severity label's values to severities.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	SeverityMap map[string]Severity `json:"severityMap,omitempty"`
}

// SilencePolicy bounds the namespace's Silences.
type SilencePolicy struct {
	// maxDuration is the longest a Silence of the namespace may last
	// (endsAt - startsAt); default 168h, at most 720h. The operator does not
	// apply a longer Silence (state Invalid, condition Accepted=False).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="spec.silences.maxDuration must be between 1m and 720h"
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`
}

// AlertRoutingPolicySpec is the namespace's alert routing configuration;
// every field is optional.
// +kubebuilder:validation:XValidation:rule="duration(has(self.processingLockTTL) ? self.processingLockTTL : '10m') <= duration(has(self.maxLeaseDuration) ? self.maxLeaseDuration : '1h')",messageExpression="'spec.maxLeaseDuration (' + (has(self.maxLeaseDuration) ? self.maxLeaseDuration : '1h, the default') + ') must be at least spec.processingLockTTL (' + (has(self.processingLockTTL) ? self.processingLockTTL : '10m, the default') + '): the default lease may not be longer than the longest one'",fieldPath=".maxLeaseDuration"
type AlertRoutingPolicySpec struct {
	// dedupeTTL default for Alerts without their own.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	DedupeTTL *metav1.Duration `json:"dedupeTTL,omitempty"`

	// processingLockTTL is the default claim lease.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	ProcessingLockTTL *metav1.Duration `json:"processingLockTTL,omitempty"`

	// maxLeaseDuration is the longest lease anyone may hold on an Alert of
	// the namespace, in one claim or one renewal: default 1h, at least
	// processingLockTTL, at most 24h (the most leaseDurationSeconds
	// accepts). The API server refuses a claim or renewal asking for more
	// (admission policy alertbridge-lease-cap), the operator's own
	// included, and the operator shortens a lease that is longer, or whose
	// renewTime lies ahead of its clock, so that it ends at most this long
	// after the operator saw it. Overrides per service, when they come, may
	// lower it but never raise it: this is the namespace's ceiling.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="spec.maxLeaseDuration must be between 1s and 24h"
	MaxLeaseDuration *metav1.Duration `json:"maxLeaseDuration,omitempty"`

	// retryAfter is the default delay before a Failed Alert is New again.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	RetryAfter *metav1.Duration `json:"retryAfter,omitempty"`

	// triageCooldown: at most one triage run per signature per cooldown.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	TriageCooldown *metav1.Duration `json:"triageCooldown,omitempty"`

	// allowedKinds restricts spec.kind of Alerts; empty allows any.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[a-z][a-z0-9_]{0,62}$`
	AllowedKinds []string `json:"allowedKinds,omitempty"`

	// signatureLabels are Alert labels added to the incident signature.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	SignatureLabels []string `json:"signatureLabels,omitempty"`

	// incident conversion settings.
	// +optional
	Incident *IncidentPolicy `json:"incident,omitempty"`

	// triage settings.
	// +optional
	Triage *TriagePolicy `json:"triage,omitempty"`

	// retention settings.
	// +optional
	Retention *RetentionPolicy `json:"retention,omitempty"`

	// alertmanager mapping overrides.
	// +optional
	Alertmanager *AlertmanagerMapping `json:"alertmanager,omitempty"`

	// silences bounds the namespace's Silences.
	// +optional
	Silences *SilencePolicy `json:"silences,omitempty"`
}

// AlertRoutingPolicyStatus is the observed state of the policy.
type AlertRoutingPolicyStatus struct {
	// observedGeneration is the generation last seen.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Mirrored, whether the namespace's records reach the
	// PostgreSQL mirror (reasons CaughtUp, MirrorDisabled,
	// DatabaseUnavailable, FinalizerPolicyMissing).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AlertRoutingPolicy configures alert handling for its namespace; there is
// one per namespace and it is named default.
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=arp,categories=alertbridge
// +kubebuilder:printcolumn:name="DedupeTTL",type=string,JSONPath=`.spec.dedupeTTL`
// +kubebuilder:printcolumn:name="Cooldown",type=string,JSONPath=`.spec.triageCooldown`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="metadata.name: an AlertRoutingPolicy must be named default (one per namespace)"
type AlertRoutingPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the routing configuration.
	// +optional
	Spec AlertRoutingPolicySpec `json:"spec,omitempty"`

	// status is the observed state.
	// +optional
	Status AlertRoutingPolicyStatus `json:"status,omitempty"`
}

// AlertRoutingPolicyList contains a list of AlertRoutingPolicy.
// +kubebuilder:object:root=true
type AlertRoutingPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AlertRoutingPolicy `json:"items"`
}
