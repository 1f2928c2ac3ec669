package httpapi

// RBAC of the HTTP API (`alertbridge serve`), which runs as its own
// ServiceAccount. The comment above each marker is its reason, which `make
// manifests` copies into config/rbac/api/role.yaml; markers elsewhere in
// this package and in internal/intake add to it. Everything here is on
// alertbridge's own kinds: the API reads no Secret but its certificate's
// (a Role in its namespace), creates no pod or Job, and writes for a
// caller only after a SubjectAccessReview of what the caller asked.

// The HTTP API reads the Alerts it lists, claims and counts into (its cache), and one Alert for a caller allowed to get it.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch
// The HTTP API reads Incidents (open incidents, the dashboard, one Incident for a caller allowed to get it) and, for a caller allowed to convert an Alert, opens one (to-incident).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=get;list;watch;create
// The HTTP API appends a converted Alert and a caller's notes to an Incident's status, for a caller allowed to (SubjectAccessReview).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents/status,verbs=patch
// The HTTP API serves release gates from SLOPolicies' status.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=slopolicies,verbs=get;list;watch
// The HTTP API reads each namespace's AlertRoutingPolicy (lease and retry defaults, Alertmanager label mapping).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alertroutingpolicies,verbs=get;list;watch
// The dashboard shows the Silences of the namespaces a caller may read.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=silences,verbs=get;list;watch
