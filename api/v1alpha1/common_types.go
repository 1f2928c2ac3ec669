package v1alpha1

// Names shared by every kind; users and tests depend on them.
const (
	// FingerprintLabel carries the label-safe effective fingerprint of an
	// Alert the HTTP intake or `alerts ingest` created.
	FingerprintLabel = "ops.alertbridge.io/fingerprint"
	// FingerprintField selects Alerts by the label-safe effective
	// fingerprint the Alert controller records when it decides them
	// (kubectl get alerts --field-selector status.fingerprint=…).
	FingerprintField = "status.fingerprint"
	// SignatureLabel carries a label-safe hash of an Incident's signature.
	SignatureLabel = "ops.alertbridge.io/signature"
	// MirrorFinalizer holds an object until its final state is in PostgreSQL.
	MirrorFinalizer = "ops.alertbridge.io/mirror"
	// IngestKeyAnnotation holds the hashed idempotency key of the request
	// that created an Alert through the HTTP API.
	IngestKeyAnnotation = "ops.alertbridge.io/ingest-key"
	// AlertmanagerFingerprintAnnotation keeps Alertmanager's fingerprint
	// beside ours on Alerts that came from its webhook.
	AlertmanagerFingerprintAnnotation = "ops.alertbridge.io/alertmanager-fingerprint"
	// TriageServiceAccountAnnotation marks a ServiceAccount a namespace admin
	// allows triage Jobs to run as.
	TriageServiceAccountAnnotation = "ops.alertbridge.io/triage"
	// OriginLabel set to OriginOperator marks an Alert the operator creates
	// on its own account (the mirror finalizer policy's dry-run probe),
	// not for a caller. Written by the operator, it exempts the Alert from
	// the namespace's allowedKinds (config/admission); written by anyone
	// else, it changes nothing.
	OriginLabel = "ops.alertbridge.io/origin"
	// OriginOperator is the value of OriginLabel on the operator's own Alerts.
	OriginOperator = "operator"
)

// ReasonSecretNotAllowed is the reason of the SLOPolicy Ready and the
// Incident TriageConfigured conditions when a secretRef names a Secret the
// operator never sends anywhere (a ServiceAccount token).
const ReasonSecretNotAllowed = "SecretNotAllowed"

// The operator reads the Secrets that SLOPolicies, Receivers and triage
// webhooks name, and creates triage Jobs, only in namespaces whose admin
// granted it that right: a RoleBinding there of the ClusterRole
// alertbridge-credentials (get secrets) or alertbridge-triage-jobs (create
// jobs, get serviceaccounts) to the operator's ServiceAccount. Nothing
// grants them cluster-wide.
const (
	// ConditionCredentialsAvailable is True on an SLOPolicy or Receiver
	// whose Secret the operator could read, False (reason NotGranted) when
	// the namespace has not granted it the right, with the command that
	// grants it in the message.
	ConditionCredentialsAvailable = "CredentialsAvailable"
	// ReasonCredentialsRead: the Secret was read.
	ReasonCredentialsRead = "Read"
	// ReasonNotGranted: the namespace has not granted the operator the
	// right (reading its Secrets, or creating triage Jobs); also the reason
	// of Receiver Ready and Incident TriageConfigured then.
	ReasonNotGranted = "NotGranted"
)

// Severity ranks an Alert or Incident from P0 (worst) to P4.
// +kubebuilder:validation:Enum=P0;P1;P2;P3;P4
type Severity string

// Severities, worst first.
const (
	SeverityP0 Severity = "P0"
	SeverityP1 Severity = "P1"
	SeverityP2 Severity = "P2"
	SeverityP3 Severity = "P3"
	SeverityP4 Severity = "P4"
)

// Rank orders severities: P0 is 0, P4 is 4; an unknown value ranks last.
func (s Severity) Rank() int {
	switch s {
	case SeverityP0:
		return 0
	case SeverityP1:
		return 1
	case SeverityP2:
		return 2
	case SeverityP3:
		return 3
	case SeverityP4:
		return 4
	}
	return 5
}

// AtLeast reports whether s is as bad as other or worse.
func (s Severity) AtLeast(other Severity) bool { return s.Rank() <= other.Rank() }

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}
