package base

// Read parameters.
const (
	// DefaultWindowMinutes is four hours: recent enough for a work queue,
	// long enough to span a shift's backlog.
	DefaultWindowMinutes = 240
	// MaxWindowMinutes is a year; windowMinutes=0 means no window.
	MaxWindowMinutes = 525600
)

// ListRequest is the list of GET /v1/alerts as a tool input.
type ListRequest struct {
	Namespace     string   `json:"namespace,omitempty" jsonschema:"namespace to list; empty: every namespace you may list Alerts in"`
	WindowMinutes *int64   `json:"windowMinutes,omitempty" jsonschema:"only Alerts last seen within this many minutes (default 240; 0: no window)"`
	StatusIn      []string `json:"statusIn,omitempty" jsonschema:"only these phases: New, Processing, Acked, Failed, Deduplicated (any case)"`
	Env           string   `json:"env,omitempty" jsonschema:"only this env"`
	Source        string   `json:"source,omitempty" jsonschema:"only this source, e.g. monitor@node1"`
	Service       string   `json:"service,omitempty" jsonschema:"only this service"`
}

// DashboardRequest is GET /v1/alerts/dashboard as a tool input.
type DashboardRequest struct {
	Namespace     string `json:"namespace,omitempty" jsonschema:"namespace; empty: every namespace you may list Alerts in"`
	WindowMinutes *int64 `json:"windowMinutes,omitempty" jsonschema:"window in minutes (default 240; 0: no window)"`
}

// IncidentsOpenRequest is GET /v1/incidents/open as a tool input.
type IncidentsOpenRequest struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace; empty: every namespace you may list Incidents in"`
	Service   string `json:"service,omitempty" jsonschema:"only this service"`
}
