package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertKindSLOBurn is spec.kind of the Alerts the operator raises when an
// error budget burns too fast. They are exempt from the AlertRoutingPolicy's
// allowedKinds, so the operator can raise them in a namespace that
// restricts which kinds of Alert may be created.
const AlertKindSLOBurn = "slo_burn"

// Labels of slo_burn Alerts (part of their fingerprint): one Alert per
// policy and condition.
const (
	SLOBurnPolicyLabel    = "slopolicy"
	SLOBurnConditionLabel = "burn"
)

// Gate reasons of the error-budget checks.
const (
	ReasonErrorBudgetLow     = "ErrorBudgetLow"
	ReasonErrorBudgetBurning = "ErrorBudgetBurning"
	// ReasonInvalidObjectives: the objectives cannot be evaluated as
	// written; the message names the field.
	ReasonInvalidObjectives = "InvalidObjectives"
)

// Objective names, as in status.objectives[].name.
const (
	ObjectiveAvailability = "availability"
	ObjectiveLatency      = "latency"
)

// BurnCondition names a multiwindow burn-rate condition.
// +kubebuilder:validation:Enum=page;ticket;off
type BurnCondition string

// Burn conditions: page is the fast burn, ticket the slow one; off (only in
// gate.blockOnBurn) ignores both.
const (
	BurnPage   BurnCondition = "page"
	BurnTicket BurnCondition = "ticket"
	BurnOff    BurnCondition = "off"
)

// SLOWindow is a Prometheus duration of one unit: 5m, 1h, 28d.
// +kubebuilder:validation:MaxLength=8
// +kubebuilder:validation:Pattern=`^[1-9][0-9]{0,5}(s|m|h|d)$`
type SLOWindow string

// BudgetObjective is what every error-budget objective has: the share of
// good events to reach over a rolling window.
type BudgetObjective struct {
	// target is the objective in percent, a decimal string strictly
	// between 0 and 100 such as "99.9" (no floats in the API).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^[0-9]{1,2}(\.[0-9]{1,6})?$`
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0",message="target must be greater than 0 and less than 100, a percentage such as \"99.9\""
	Target string `json:"target"`

	// window is the rolling window the budget is counted over, e.g. 28d
	// (at most 90d, and longer than every burn-rate window).
	// +optional
	// +kubebuilder:default="28d"
	// +kubebuilder:validation:XValidation:rule="(self.endsWith('d') ? 86400 : self.endsWith('h') ? 3600 : self.endsWith('m') ? 60 : 1) * int(self.substring(0, size(self)-1)) <= 7776000",message="window must be at most 90d"
	Window SLOWindow `json:"window,omitempty"`
}

// AvailabilityObjective is the share of requests that do not fail. The
// queries are series selectors of counters; the operator (and `alertbridge
// slo rules`) evaluates sum(rate(SELECTOR[window])). ${service} and ${env}
// are replaced by the policy's service and env.
// +kubebuilder:validation:XValidation:rule="!(has(self.errorQuery) && has(self.goodQuery))",message="spec.objectives.availability: set errorQuery or goodQuery, not both"
type AvailabilityObjective struct {
	BudgetObjective `json:",inline"`

	// errorQuery selects the counter of failed requests; default
	// http_requests_total{service="${service}",env="${env}",code=~"5.."}.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	ErrorQuery string `json:"errorQuery,omitempty"`

	// goodQuery selects the counter of good requests, instead of
	// errorQuery.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	GoodQuery string `json:"goodQuery,omitempty"`

	// totalQuery selects the counter of all requests; default
	// http_requests_total{service="${service}",env="${env}"}.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	TotalQuery string `json:"totalQuery,omitempty"`
}

// LatencyObjective is the share of requests faster than thresholdMs, read
// from a histogram: good requests are its bucket le=thresholdMs/1000.
type LatencyObjective struct {
	BudgetObjective `json:",inline"`

	// thresholdMs is the latency a good request stays within; the
	// histogram needs a bucket at exactly this bound.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600000
	ThresholdMs int64 `json:"thresholdMs"`

	// goodQuery selects the counter of requests within thresholdMs;
	// default http_request_duration_seconds_bucket{service="${service}",env="${env}",le="<thresholdMs/1000>"}.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	GoodQuery string `json:"goodQuery,omitempty"`

	// totalQuery selects the counter of all requests; default
	// http_request_duration_seconds_count{service="${service}",env="${env}"}.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	TotalQuery string `json:"totalQuery,omitempty"`
}

// BurnRateWindow is one multiwindow check: the condition holds while the
// burn rate over both long and short exceeds factor.
// +kubebuilder:validation:XValidation:rule="(self.short.endsWith('d') ? 86400 : self.short.endsWith('h') ? 3600 : self.short.endsWith('m') ? 60 : 1) * int(self.short.substring(0, size(self.short)-1)) < (self.long.endsWith('d') ? 86400 : self.long.endsWith('h') ? 3600 : self.long.endsWith('m') ? 60 : 1) * int(self.long.substring(0, size(self.long)-1))",message="short must be shorter than long"
type BurnRateWindow struct {
	// long window, e.g. 1h.
	// +required
	Long SLOWindow `json:"long"`
	// short window, e.g. 5m (the workbook uses 1/12 of long).
	// +required
	Short SLOWindow `json:"short"`
	// factor is the burn rate (a multiple of the rate that spends the
	// budget exactly over the window), a decimal string such as "14.4".
	// +required
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^[0-9]{1,4}(\.[0-9]{1,6})?$`
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0",message="factor must be greater than 0"
	Factor string `json:"factor"`
}

// BurnRateCondition is a page or a ticket: it holds while any of its
// windows holds.
type BurnRateCondition struct {
	// windows are checked independently; empty means the SRE workbook's
	// (page: 1h/5m at 14.4 and 6h/30m at 6; ticket: 1d/2h at 3 and 3d/6h
	// at 1).
	// +optional
	// +kubebuilder:validation:MaxItems=4
	// +listType=atomic
	Windows []BurnRateWindow `json:"windows,omitempty"`

	// severity of the slo_burn Alert; default P1 for page (Alertmanager's
	// critical), P3 for ticket (warning).
	// +optional
	Severity *Severity `json:"severity,omitempty"`

	// disabled raises no Alert for this condition (the gate may still
	// block on it).
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// BurnRateAlerting configures the multiwindow, multi-burn-rate alerts of
// the error-budget objectives.
type BurnRateAlerting struct {
	// page is the fast burn.
	// +optional
	Page *BurnRateCondition `json:"page,omitempty"`
	// ticket is the slow burn.
	// +optional
	Ticket *BurnRateCondition `json:"ticket,omitempty"`
}

// BurnRateStatus is the burn rate over one window.
type BurnRateStatus struct {
	// window, e.g. 1h.
	// +required
	Window SLOWindow `json:"window"`
	// rate is the burn rate over it, a decimal string ("" without data).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Rate string `json:"rate,omitempty"`
}

// ObjectiveStatus is one error-budget objective as last evaluated.
type ObjectiveStatus struct {
	// name: availability or latency.
	// +required
	// +kubebuilder:validation:Enum=availability;latency
	Name string `json:"name"`
	// target in percent.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Target string `json:"target,omitempty"`
	// window the budget is counted over.
	// +optional
	Window SLOWindow `json:"window,omitempty"`
	// sliPercent is the share of good events over the window, in percent
	// ("" without data).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	SLIPercent string `json:"sliPercent,omitempty"`
	// errorBudgetRemainingPercent is the budget left, in percent of the
	// whole; negative once overspent.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ErrorBudgetRemainingPercent string `json:"errorBudgetRemainingPercent,omitempty"`
	// errorBudgetRemainingMinutes is the budget left as minutes of total
	// outage.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	ErrorBudgetRemainingMinutes string `json:"errorBudgetRemainingMinutes,omitempty"`
	// burnRates per alerting window.
	// +optional
	// +listType=map
	// +listMapKey=window
	// +kubebuilder:validation:MaxItems=16
	BurnRates []BurnRateStatus `json:"burnRates,omitempty"`
	// burning lists the conditions that hold (page, ticket).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=2
	Burning []BurnCondition `json:"burning,omitempty"`
}

// BurnAlertStatus is a firing slo_burn Alert the operator raised for one
// objective and condition.
type BurnAlertStatus struct {
	// objective: availability or latency.
	// +required
	// +kubebuilder:validation:Enum=availability;latency
	Objective string `json:"objective"`
	// condition: page or ticket.
	// +required
	Condition BurnCondition `json:"condition"`
	// since is when the condition started to hold; with the objective and
	// condition it keys the firing instance the operator resolves.
	// +required
	Since metav1.Time `json:"since"`
	// alertRef is the Alert that counted the firing ("" until it is raised).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	AlertRef string `json:"alertRef,omitempty"`
}
