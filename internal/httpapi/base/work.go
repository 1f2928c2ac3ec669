package base

import (
	"time"

	"github.com/alertbridge/alertbridge/internal/query"
)

// The work queue over HTTP and MCP: the requests and answers of
// POST /v1/alerts/claim, /v1/alerts/{namespace}/{name}/renew|ack|fail|to-incident
// and /v1/incidents/{namespace}/{name}/note|close|state. The MCP tools take
// the same types as input (with the namespace and name the HTTP path
// carries), and the OpenAPI document describes them from the same types.

// Work-queue bounds.
const (
	// DefaultClaimLimit is a claim's batch when it names none.
	DefaultClaimLimit = 25
	// MaxClaimLimit bounds one claim.
	MaxClaimLimit = 500
)

// ClaimRequest is POST /v1/alerts/claim: claim(window_minutes, limit,
// owner, lock_ttl_seconds), plus filters.
type ClaimRequest struct {
	Namespace     string   `json:"namespace,omitempty" jsonschema:"namespace to claim in; empty: every namespace where you may list Alerts and patch alerts/status"`
	WindowMinutes *int64   `json:"windowMinutes,omitempty" jsonschema:"only Alerts last seen within this many minutes (default 240; 0: no window)"`
	Limit         int      `json:"limit,omitempty" jsonschema:"most Alerts to claim (default 25)"`
	Owner         string   `json:"owner,omitempty" jsonschema:"lease holder name your loop goes by, e.g. triage-supervisor (default: your Kubernetes user name)"`
	LockTTL       string   `json:"lockTTL,omitempty" jsonschema:"lease duration, e.g. 10m (default: the namespace's AlertRoutingPolicy processingLockTTL, else 10m)"`
	StatusIn      []string `json:"statusIn,omitempty" jsonschema:"phases to claim; only New Alerts are claimable (Failed ones come back as New when their retryAfter passes)"`
	Env           string   `json:"env,omitempty" jsonschema:"only Alerts of this env"`
	Service       string   `json:"service,omitempty" jsonschema:"only Alerts of this service"`
}

// ClaimResult is the answer of a claim: exactly the Alerts this call took,
// oldest first. Nothing to claim is an empty list, not an error.
type ClaimResult struct {
	Count          int         `json:"count"`
	Alerts         []WorkAlert `json:"alerts"`
	NothingToClaim bool        `json:"nothingToClaim"`
	Message        string      `json:"message,omitempty"`
}

// RenewRequest extends the caller's lease.
type RenewRequest struct {
	Owner   string `json:"owner,omitempty" jsonschema:"the owner name the Alert was claimed with (default: the owner of your lease on it)"`
	LockTTL string `json:"lockTTL,omitempty" jsonschema:"new lease duration from now, e.g. 10m (default: keep the current one)"`
}

// AckRequest closes an Alert: the caller's own claim, or (on-call) one
// nobody holds.
type AckRequest struct {
	Owner string `json:"owner,omitempty" jsonschema:"the owner name the Alert was claimed with (default: the owner of your lease on it)"`
	Note  string `json:"note,omitempty" jsonschema:"why, e.g. false positive"`
}

// RequeueRequest moves a Processing Alert (whoever holds it) or a Failed
// one back to New (on-call: the requeue verb).
type RequeueRequest struct {
	Reason string `json:"reason" jsonschema:"why, recorded in status.requeued.reason, e.g. worker hung"`
}

// FailRequest hands the caller's claimed Alert back for a retry.
type FailRequest struct {
	Owner      string `json:"owner,omitempty" jsonschema:"the owner name the Alert was claimed with (default: the owner of your lease on it)"`
	Error      string `json:"error,omitempty" jsonschema:"what went wrong, recorded as status.lastError"`
	RetryAfter string `json:"retryAfter,omitempty" jsonschema:"delay before the Alert is claimable again, e.g. 5m (default: the AlertRoutingPolicy's retryAfter, else 5m)"`
}

// ToIncidentRequest is alert_to_incident: convert an Alert into an Incident.
type ToIncidentRequest struct {
	SeverityCap  string `json:"severityCap,omitempty" jsonschema:"the Incident is never worse than this, P0..P4 (default: the AlertRoutingPolicy, else P1)"`
	DedupeWindow string `json:"dedupeWindow,omitempty" jsonschema:"an open Incident of the signature active within this window absorbs the Alert, e.g. 60m (default: the AlertRoutingPolicy, else 60m)"`
	Signature    string `json:"signature,omitempty" jsonschema:"override the signature (default: service/env/kind plus the policy's signatureLabels)"`
}

// IncidentNoteRequest adds a note to an Incident's timeline (and spec.note).
type IncidentNoteRequest struct {
	Note string `json:"note" jsonschema:"the note"`
}

// IncidentCloseRequest closes an Incident; Closed is terminal.
type IncidentCloseRequest struct {
	Note string `json:"note" jsonschema:"why it is closed (required)"`
}

// IncidentStateRequest moves an Incident to another state.
type IncidentStateRequest struct {
	State string `json:"state" jsonschema:"Open, Mitigating, Resolved or Closed (Closed needs a note)"`
	Note  string `json:"note,omitempty" jsonschema:"why (required for Closed)"`
}

// WorkAlert is an Alert as the work queue answers it: the list line of
// GET /v1/alerts plus its reference and lease.
type WorkAlert struct {
	query.AlertItem
	// AlertRef is namespace/name; every action that takes an Alert takes it.
	AlertRef string `json:"alertRef"`
	// Lease is the claim of a Processing Alert.
	Lease *Lease `json:"lease,omitempty"`
	// RetryAfter is when a Failed Alert becomes claimable again.
	RetryAfter *time.Time `json:"retryAfter,omitempty"`
}

// Lease is an Alert's claim.
type Lease struct {
	Owner           string    `json:"owner"`
	User            string    `json:"user"`
	AcquiredAt      time.Time `json:"acquiredAt"`
	RenewedAt       time.Time `json:"renewedAt"`
	ExpiresAt       time.Time `json:"expiresAt"`
	DurationSeconds int32     `json:"durationSeconds"`
}

// ToIncidentResult says what a conversion did.
type ToIncidentResult struct {
	AlertRef string       `json:"alertRef"`
	Incident WorkIncident `json:"incident"`
	// Created is true when this call opened the Incident.
	Created bool `json:"created"`
	// Appended is true when this call linked the Alert (false: it was already).
	Appended bool `json:"appended"`
	// Triage is the Incident's triage as read after the conversion: the
	// operator, not this call, decides whether the Alert starts a run,
	// when it sees the Alert.
	Triage IncidentTriage `json:"triage"`
}

// IncidentTriage is an Incident's triage state as read.
type IncidentTriage struct {
	// Pending is true while the operator has not seen the newest Alerts
	// (this call's, usually) and so has not decided whether they start a
	// run.
	Pending bool `json:"pending"`
	// Runs counts the Incident's triage runs so far.
	Runs int32 `json:"runs"`
	// LastRun names the last run (its Job), LastRunAlert the Alert it was for.
	LastRun      string `json:"lastRun,omitempty"`
	LastRunAlert string `json:"lastRunAlert,omitempty"`
	// CooldownUntil: no new run for the signature before then.
	CooldownUntil *time.Time `json:"cooldownUntil,omitempty"`
}

// WorkIncident is an Incident as the work queue answers it: the line of
// GET /v1/incidents/open plus its reference and note.
type WorkIncident struct {
	query.IncidentInfo
	// IncidentRef is namespace/name.
	IncidentRef string `json:"incidentRef"`
	Note        string `json:"note,omitempty"`
	Signature   string `json:"signature,omitempty"`
}
