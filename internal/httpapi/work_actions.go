package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/internal/silence"
	"github.com/alertbridge/alertbridge/internal/slo"
)

// The actions behind the work-queue endpoints, the tool endpoint and the MCP
// tools. Each judges the caller as kubectl would (see docs/adr/two-identities.md): a
// SubjectAccessReview for every verb the same change made with kubectl or
// the CLI needs, then the rules the admission policies would apply to the
// caller (the claim names the caller, only the holder renews, acks or
// fails, acking an Alert nobody holds needs acknowledge), and only then the
// operator writes, as itself, with the same libraries as the CLI.

// access is one SubjectAccessReview an action needs: verb on resource
// ("alerts/status" for the subresource) of ops.alertbridge.io.
type access struct{ verb, resource, ns, name string }

// authorize checks every need for u: a 403 naming the verb and resource for
// the first refused, a 503 when access cannot be checked.
func (s *Server) authorize(ctx context.Context, u *User, needs ...access) error {
	for _, a := range needs {
		ok, err := s.auth.Allowed(ctx, u, a.verb, v1.GroupVersion.Group, a.resource, a.ns, a.name)
		if err != nil {
			return unavailableProblem("cannot check access now: " + err.Error())
		}
		if !ok {
			return forbidden(u, a)
		}
	}
	return nil
}

// allowed reports whether u may do every need.
func (s *Server) allowed(ctx context.Context, u *User, needs ...access) (bool, error) {
	err := s.authorize(ctx, u, needs...)
	var p *problem
	if errors.As(err, &p) && p.Code == http.StatusForbidden {
		return false, nil
	}
	return err == nil, err
}

// claimer works Alerts for u: claims record u as holderUser and acks as
// ack.by, renew, ack and fail check that u holds the lease, and admit
// applies the admission policy's acknowledge rule. Candidates come from
// the server's Alert cache, in namespaces where u was found allowed to
// list Alerts, so a claim costs the API server no LIST.
func (s *Server) claimer(u *User) *claim.Claimer {
	return &claim.Claimer{Client: s.cfg.Client, Lister: s.reader, User: u.Username, Clock: s.clock, Admit: s.admit(u), Seen: s.seen}
}

// claimsSeen is how many claimed Alerts a replica remembers: forty agents'
// batches of 25 in flight; a miss costs only the read.
const claimsSeen = 1024

// admit is the part of the admission policy alertbridge-alert-status that
// the claim library does not check itself: a silenced Alert is not claimed,
// and acking an Alert nobody holds needs the virtual verb
// acknowledge on alerts/status (on-call). It refuses with the policy's own
// words.
func (s *Server) admit(u *User) func(context.Context, string, *v1.Alert) error {
	return func(ctx context.Context, op string, a *v1.Alert) error {
		if op == "claim" && alertstate.Silenced(&a.Status) {
			return &alertstate.SilencedError{Alert: a.Name, Message: silence.SilencedBy(&a.Status)}
		}
		if op != "ack" || (a.Status.Phase != v1.AlertNew && a.Status.Phase != v1.AlertFailed) {
			return nil
		}
		ok, err := s.allowed(ctx, u, access{"acknowledge", "alerts/status", a.Namespace, a.Name})
		if err != nil || ok {
			return err
		}
		return newProblem(http.StatusForbidden, fmt.Sprintf("status.phase: acking Alert %s, which nobody holds, needs the acknowledge verb "+
			"on alerts/status (the alertbridge-oncall role); %s may ack only the Alerts it claimed", a.Name, u.Username))
	}
}

// ref is the namespace and name of the Alert or Incident an action works on.
type ref struct{ ns, name string }

func (r ref) key() client.ObjectKey { return client.ObjectKey{Namespace: r.ns, Name: r.name} }
func (r ref) String() string        { return r.ns + "/" + r.name }

func (r ref) validate(base *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, dnsLabel(base.Child("namespace"), r.ns, true)...)
	if r.name == "" {
		return append(errs, field.Required(base.Child("name"), ""))
	}
	for _, msg := range validation.IsDNS1123Subdomain(r.name) {
		errs = append(errs, field.Invalid(base.Child("name"), r.name, msg))
	}
	return errs
}

func dnsLabel(p *field.Path, v string, required bool) field.ErrorList {
	if v == "" {
		if required {
			return field.ErrorList{field.Required(p, "")}
		}
		return nil
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

// duration parses a Go duration within [lo, hi]; empty is zero.
func duration(p *field.Path, v string, lo, hi time.Duration) (time.Duration, *field.Error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, field.Invalid(p, v, fmt.Sprintf("must be a duration such as 10m, from %s to %s", lo, hi))
	}
	return d, nil
}

func tooLong(p *field.Path, v string, n int) field.ErrorList {
	if len(v) > n {
		return field.ErrorList{field.TooLong(p, "", n)}
	}
	return nil
}

// windowOf is windowMinutes, DefaultWindowMinutes when absent.
func windowOf(p *field.Path, m *int64) (time.Duration, *field.Error) {
	if m == nil {
		return DefaultWindowMinutes * time.Minute, nil
	}
	if *m < 0 || *m > MaxWindowMinutes {
		return 0, field.Invalid(p, *m, "must be a whole number of minutes from 0 (no window) to "+strconv.Itoa(MaxWindowMinutes))
	}
	return time.Duration(*m) * time.Minute, nil
}

// claimAlerts is POST /v1/alerts/claim.
func (s *Server) claimAlerts(ctx context.Context, u *User, r ClaimRequest) (*ClaimResult, error) {
	var errs field.ErrorList
	errs = append(errs, dnsLabel(field.NewPath("namespace"), r.Namespace, false)...)
	window, ferr := windowOf(field.NewPath("windowMinutes"), r.WindowMinutes)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	limit := r.Limit
	switch {
	case limit == 0:
		limit = DefaultClaimLimit
	case limit < 1 || limit > MaxClaimLimit:
		errs = append(errs, field.Invalid(field.NewPath("limit"), limit, fmt.Sprintf("must be from 1 to %d", MaxClaimLimit)))
	}
	errs = append(errs, tooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	ttl, ferr := duration(field.NewPath("lockTTL"), r.LockTTL, time.Second, alertstate.MaxLeaseSeconds*time.Second)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	phases, err := query.ParsePhases(r.StatusIn)
	switch {
	case err != nil:
		errs = append(errs, field.Invalid(field.NewPath("statusIn"), r.StatusIn, err.Error()))
	case slices.ContainsFunc(phases, func(p v1.AlertPhase) bool { return p != v1.AlertNew }):
		errs = append(errs, field.NotSupported(field.NewPath("statusIn"), r.StatusIn, []string{string(v1.AlertNew)}))
	}
	errs = append(errs, tooLong(field.NewPath("env"), r.Env, 63)...)
	errs = append(errs, tooLong(field.NewPath("service"), r.Service, 63)...)
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	req := claim.Request{
		Namespace: r.Namespace, Window: window, Limit: limit, Owner: owner(r.Owner, u), LockTTL: ttl,
		Env: r.Env, Service: r.Service,
	}
	if r.Namespace != "" {
		if err := s.authorize(ctx, u, claimNeeds(r.Namespace)...); err != nil {
			return nil, err
		}
	} else {
		nss, everywhere, err := s.claimNamespaces(ctx, u)
		switch {
		case err != nil:
			return nil, err
		case !everywhere && len(nss) == 0:
			return &ClaimResult{Alerts: []WorkAlert{}, NothingToClaim: true,
				Message: "nothing to claim: no New Alert in the namespaces you may claim in"}, nil
		}
		req.Namespaces = nss
	}
	got, err := s.claimer(u).Claim(ctx, req)
	err = lockTTLError(err)
	res := &ClaimResult{Alerts: make([]WorkAlert, 0, len(got))}
	for i := range got {
		res.Alerts = append(res.Alerts, workAlert(&got[i]))
	}
	res.Count = len(res.Alerts)
	switch {
	case errors.Is(err, claim.ErrNothingToClaim):
		res.NothingToClaim = true
		res.Message = "nothing to claim: no New Alert matched in the namespaces you may claim in"
	case err != nil && len(got) == 0:
		return nil, err
	case err != nil:
		// The caller holds these leases: tell them, and why the batch stopped.
		res.Message = "the claim stopped early: " + err.Error()
	}
	return res, nil
}

// claimNeeds are the rights a claim in ns needs, as kubectl would: list
// Alerts and patch their status.
func claimNeeds(ns string) []access {
	return []access{{"list", "alerts", ns, ""}, {"patch", "alerts/status", ns, ""}}
}

// claimNamespaces decides, before anything is listed from the API server,
// where a claim without a namespace takes from: everywhere for a caller
// who may claim cluster-wide; else the namespaces holding New Alerts in the
// server's cache where the caller may claim. At most MaxReviewedNamespaces
// namespaces are checked: first those the caller worked in (it holds or
// acked an Alert there), then those whose New Alerts are the newest.
// Allowed in one of them but with nothing New there is nothing to claim;
// allowed in none is 403, asking for the namespace. No namespace holding a
// New Alert is nothing to claim whoever asks.
func (s *Server) claimNamespaces(ctx context.Context, u *User) (nss []string, everywhere bool, err error) {
	if everywhere, err = s.allowed(ctx, u, claimNeeds("")...); err != nil || everywhere {
		return nil, everywhere, err
	}
	var list v1.AlertList
	if err := s.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, false, unavailableProblem("cannot read Alerts now: " + err.Error())
	}
	claimable := claim.ClaimableNamespaces(list.Items)
	if len(claimable) == 0 {
		return nil, false, nil
	}
	hasNew := make(map[string]bool, len(claimable))
	for _, ns := range claimable {
		hasNew[ns] = true
	}
	worked := claim.WorkedNamespaces(list.Items, u.Username)
	order := slices.Concat(worked, slices.DeleteFunc(claimable, func(ns string) bool { return slices.Contains(worked, ns) }))
	somewhere := false
	for _, ns := range order[:min(len(order), MaxReviewedNamespaces)] {
		ok, err := s.allowed(ctx, u, claimNeeds(ns)...)
		if err != nil {
			return nil, false, err
		}
		somewhere = somewhere || ok
		if ok && hasNew[ns] {
			nss = append(nss, ns)
		}
	}
	if !somewhere {
		return nil, false, newProblem(http.StatusForbidden, fmt.Sprintf("user %s may claim Alerts in none of the namespaces checked "+
			"(those it worked in, then those with the newest New Alerts, at most %d): claiming needs list on alerts and patch on alerts/status "+
			"(the alertbridge-agent role); name the namespace to claim in with namespace", u.Username, MaxReviewedNamespaces))
	}
	return nss, false, nil
}

// renewAlert is POST /v1/alerts/{namespace}/{name}/renew.
func (s *Server) renewAlert(ctx context.Context, u *User, at ref, r RenewRequest) (*WorkAlert, error) {
	errs := at.validate(field.NewPath("alert"))
	errs = append(errs, tooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	ttl, ferr := duration(field.NewPath("lockTTL"), r.LockTTL, time.Second, alertstate.MaxLeaseSeconds*time.Second)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	return s.leaseAction(ctx, u, at, func(cl *claim.Claimer) (*v1.Alert, error) {
		a, err := cl.Renew(ctx, at.key(), s.leaseOwner(ctx, u, at, r.Owner), ttl)
		return a, lockTTLError(err)
	})
}

// lockTTLError answers a lockTTL longer than the namespace allows as the
// 400 of that field. The claim library judges it against the namespace's
// AlertRoutingPolicy (maxLeaseDuration) before it writes, so only once the
// caller is authorised: nobody learns a namespace's ceiling without the
// right to work in it.
func lockTTLError(err error) error {
	var tl *claim.LeaseTooLongError
	if errors.As(err, &tl) {
		return invalid(field.ErrorList{tl.Field(field.NewPath("lockTTL"))})
	}
	return err
}

// ackAlert is POST /v1/alerts/{namespace}/{name}/ack.
func (s *Server) ackAlert(ctx context.Context, u *User, at ref, r AckRequest) (*WorkAlert, error) {
	errs := at.validate(field.NewPath("alert"))
	errs = append(errs, tooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	errs = append(errs, tooLong(field.NewPath("note"), r.Note, maxNote)...)
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	return s.leaseAction(ctx, u, at, func(cl *claim.Claimer) (*v1.Alert, error) {
		return cl.Ack(ctx, at.key(), s.leaseOwner(ctx, u, at, r.Owner), r.Note)
	})
}

// failAlert is POST /v1/alerts/{namespace}/{name}/fail.
func (s *Server) failAlert(ctx context.Context, u *User, at ref, r FailRequest) (*WorkAlert, error) {
	errs := at.validate(field.NewPath("alert"))
	errs = append(errs, tooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	errs = append(errs, tooLong(field.NewPath("error"), r.Error, maxLastError)...)
	after, ferr := duration(field.NewPath("retryAfter"), r.RetryAfter, 0, 30*24*time.Hour)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	return s.leaseAction(ctx, u, at, func(cl *claim.Claimer) (*v1.Alert, error) {
		return cl.Fail(ctx, at.key(), s.leaseOwner(ctx, u, at, r.Owner), r.Error, after)
	})
}

// leaseOwner is the owner name a renew, ack or fail acts as: the one given,
// else the owner of the lease when u holds it (the runbook's fail and ack
// name no owner: the user is what the API server enforces), else u's name.
func (s *Server) leaseOwner(ctx context.Context, u *User, at ref, given string) string {
	if given != "" {
		return given
	}
	var a v1.Alert
	if err := s.cfg.Client.Get(ctx, at.key(), &a); err == nil && a.Status.Claim != nil && a.Status.Claim.HolderUser == u.Username {
		return a.Status.Claim.HolderIdentity
	}
	return u.Username
}

// leaseAction runs a renew, ack or fail for u, who needs patch on that
// Alert's status (as kubectl patch --subresource=status does).
func (s *Server) leaseAction(ctx context.Context, u *User, at ref, op func(*claim.Claimer) (*v1.Alert, error)) (*WorkAlert, error) {
	if err := s.authorize(ctx, u, access{"patch", "alerts/status", at.ns, at.name}); err != nil {
		return nil, err
	}
	a, err := op(s.claimer(u))
	if err != nil {
		return nil, err
	}
	w := workAlert(a)
	return &w, nil
}

// toIncident is POST /v1/alerts/{namespace}/{name}/to-incident: what
// `alertbridge alerts to-incident` needs — read the Alert, list and create
// Incidents, append to their status (patch incidents/status), and link the
// Alert (patch alerts/status, which the admission policy allows to those
// who may patch incidents/status). The operator writes, so the rules the
// admission policies would apply to the caller are applied here: an Alert
// someone else holds is not the caller's to link (409 naming the holder,
// before anything is written), and the entries name the caller.
func (s *Server) toIncident(ctx context.Context, u *User, at ref, r ToIncidentRequest) (*ToIncidentResult, error) {
	errs := at.validate(field.NewPath("alert"))
	sev := v1.Severity(strings.ToUpper(r.SeverityCap))
	if sev != "" && !slices.Contains([]v1.Severity{v1.SeverityP0, v1.SeverityP1, v1.SeverityP2, v1.SeverityP3, v1.SeverityP4}, sev) {
		errs = append(errs, field.NotSupported(field.NewPath("severityCap"), r.SeverityCap, []string{"P0", "P1", "P2", "P3", "P4"}))
	}
	window, ferr := duration(field.NewPath("dedupeWindow"), r.DedupeWindow, 0, 30*24*time.Hour)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	errs = append(errs, tooLong(field.NewPath("signature"), r.Signature, 256)...)
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	if err := s.authorize(ctx, u,
		access{"get", "alerts", at.ns, at.name},
		access{"list", "incidents", at.ns, ""},
		access{"create", "incidents", at.ns, ""},
		access{"patch", "incidents/status", at.ns, ""},
		access{"patch", "alerts/status", at.ns, at.name},
	); err != nil {
		return nil, err
	}
	res, err := incident.Convert(ctx, s.cfg.Client, at.key(), incident.Options{
		SeverityCap: sev, DedupeWindow: window, Signature: r.Signature, Clock: s.clock, Caller: u.Username,
	})
	if err != nil {
		return nil, err
	}
	out := toIncidentResult(at.String(), res)
	return &out, nil
}

// noteIncident is POST /v1/incidents/{namespace}/{name}/note: a Note entry
// in the caller's name (incidents/status) and spec.note.
func (s *Server) noteIncident(ctx context.Context, u *User, at ref, r IncidentNoteRequest) (*WorkIncident, error) {
	errs := at.validate(field.NewPath("incident"))
	if strings.TrimSpace(r.Note) == "" {
		errs = append(errs, field.Required(field.NewPath("note"), ""))
	}
	errs = append(errs, tooLong(field.NewPath("note"), r.Note, maxNote)...)
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	if err := s.authorize(ctx, u, access{"patch", "incidents", at.ns, at.name}, access{"patch", "incidents/status", at.ns, at.name}); err != nil {
		return nil, err
	}
	inc, err := incident.AddNote(ctx, s.cfg.Client, at.key(), r.Note, u.Username, s.clock)
	if err != nil {
		return nil, err
	}
	w := workIncident(inc)
	return &w, nil
}

// closeIncident is POST /v1/incidents/{namespace}/{name}/close.
func (s *Server) closeIncident(ctx context.Context, u *User, at ref, r IncidentCloseRequest) (*WorkIncident, error) {
	return s.setIncidentState(ctx, u, at, IncidentStateRequest{State: string(v1.IncidentClosed), Note: r.Note})
}

// The HTTP API notes, moves and closes Incidents (spec.state, spec.note) for a caller allowed to patch them (SubjectAccessReview), as the operator (see docs/adr/two-identities.md).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=patch

// setIncidentState is POST /v1/incidents/{namespace}/{name}/state.
func (s *Server) setIncidentState(ctx context.Context, u *User, at ref, r IncidentStateRequest) (*WorkIncident, error) {
	errs := at.validate(field.NewPath("incident"))
	states := []v1.IncidentState{v1.IncidentOpen, v1.IncidentMitigating, v1.IncidentResolved, v1.IncidentClosed}
	i := slices.IndexFunc(states, func(st v1.IncidentState) bool { return strings.EqualFold(string(st), r.State) })
	if i < 0 {
		errs = append(errs, field.NotSupported(field.NewPath("state"), r.State, []string{"Open", "Mitigating", "Resolved", "Closed"}))
	} else if states[i] == v1.IncidentClosed && strings.TrimSpace(r.Note) == "" {
		errs = append(errs, field.Required(field.NewPath("note"), "a note is required to close an Incident"))
	}
	errs = append(errs, tooLong(field.NewPath("note"), r.Note, maxIncidentNote)...)
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	if err := s.authorize(ctx, u, access{"patch", "incidents", at.ns, at.name}); err != nil {
		return nil, err
	}
	inc, err := incident.SetState(ctx, s.cfg.Client, at.key(), states[i], r.Note)
	if err != nil {
		return nil, err
	}
	w := workIncident(inc)
	return &w, nil
}

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

// readQuery is a tool's read input as the read endpoints' query, so both
// are checked by the same code with the same messages.
func readQuery(ns string, window *int64, statusIn []string, env, source, service string) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("namespace", ns)
	if window != nil {
		q.Set("windowMinutes", strconv.FormatInt(*window, 10))
	}
	set("statusIn", strings.Join(statusIn, ","))
	set("env", env)
	set("source", source)
	set("service", service)
	return q
}

// beginRead parses q and checks that u may list resource in the namespace
// it names, as the read endpoints do.
func (s *Server) beginRead(ctx context.Context, u *User, q url.Values, resource string) (readParams, *caller, error) {
	p, err := parseReadParams(q)
	var pe *paramError
	if errors.As(err, &pe) {
		return p, nil, invalid(field.ErrorList{field.Invalid(field.NewPath(pe.name), q.Get(pe.name), pe.msg)})
	}
	if err != nil {
		return p, nil, err
	}
	if p.namespace != "" {
		if err := s.authorize(ctx, u, access{"list", resource, p.namespace, ""}); err != nil {
			return p, nil, err
		}
	}
	return p, &caller{auth: s.auth, user: u}, nil
}

// listAlerts is GET /v1/alerts for a tool.
func (s *Server) listAlerts(ctx context.Context, u *User, r ListRequest) (*query.AlertList, error) {
	p, c, err := s.beginRead(ctx, u, readQuery(r.Namespace, r.WindowMinutes, r.StatusIn, r.Env, r.Source, r.Service), resAlerts)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	alerts, err := s.readAlerts(ctx, c, p, now)
	if err != nil {
		return nil, err
	}
	l := query.ListAlerts(alerts, p.filter, p.namespace, now)
	return &l, nil
}

// dashboard is GET /v1/alerts/dashboard for a tool.
func (s *Server) dashboard(ctx context.Context, u *User, r DashboardRequest) (*query.Dashboard, error) {
	p, c, err := s.beginRead(ctx, u, readQuery(r.Namespace, r.WindowMinutes, nil, "", "", ""), resAlerts)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	alerts, err := s.readAlerts(ctx, c, p, now)
	if err != nil {
		return nil, err
	}
	incidents, err := s.readOpenIncidents(ctx, c, p.namespace, "")
	if err != nil {
		return nil, err
	}
	policies, err := s.readPolicies(ctx, c, p.namespace)
	if err != nil {
		return nil, err
	}
	silences, err := s.readSilences(ctx, c, p.namespace)
	if err != nil {
		return nil, err
	}
	d := query.BuildDashboard(alerts, incidents, policies, silences, p.namespace, p.filter.Window, now)
	return &d, nil
}

// openIncidents is GET /v1/incidents/open for a tool.
func (s *Server) openIncidents(ctx context.Context, u *User, r IncidentsOpenRequest) (*query.IncidentList, error) {
	p, c, err := s.beginRead(ctx, u, readQuery(r.Namespace, nil, nil, "", "", r.Service), resIncidents)
	if err != nil {
		return nil, err
	}
	incidents, err := s.readOpenIncidents(ctx, c, p.namespace, p.namespace)
	if err != nil {
		return nil, err
	}
	l := query.ListOpenIncidents(incidents, p.namespace, p.filter.Service)
	return &l, nil
}

// ReleaseCheckRequest is `alertbridge release-check` as a tool input.
type ReleaseCheckRequest struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the SLOPolicies"`
	Service   string `json:"service,omitempty" jsonschema:"service to release (required unless policy is given)"`
	Env       string `json:"env,omitempty" jsonschema:"env of the service (default prod)"`
	Policy    string `json:"policy,omitempty" jsonschema:"check only this SLOPolicy"`
}

// ReleaseCheckResult is the verdict: allowed unless a gate blocks.
type ReleaseCheckResult struct {
	Allowed bool   `json:"allowed"`
	Message string `json:"message"`
	Gates   []Gate `json:"gates"`
}

// releaseCheck reads the gates of a service (or one policy), as
// `alertbridge release-check` does.
func (s *Server) releaseCheck(ctx context.Context, u *User, r ReleaseCheckRequest) (*ReleaseCheckResult, error) {
	errs := dnsLabel(field.NewPath("namespace"), r.Namespace, true)
	if r.Service == "" && r.Policy == "" {
		errs = append(errs, field.Required(field.NewPath("service"), "service (or policy) is required"))
	}
	errs = append(errs, tooLong(field.NewPath("service"), r.Service, 63)...)
	errs = append(errs, tooLong(field.NewPath("env"), r.Env, 63)...)
	errs = append(errs, tooLong(field.NewPath("policy"), r.Policy, 253)...)
	if len(errs) > 0 {
		return nil, invalid(errs)
	}
	env := r.Env
	if env == "" {
		env = "prod"
	}
	var policies []v1.SLOPolicy
	if r.Policy != "" {
		if err := s.authorize(ctx, u, access{"get", resSLOPolicies, r.Namespace, r.Policy}); err != nil {
			return nil, err
		}
		var p v1.SLOPolicy
		if err := s.reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Policy}, &p); err != nil {
			return nil, err
		}
		policies = append(policies, p)
	} else {
		if err := s.authorize(ctx, u, access{"list", resSLOPolicies, r.Namespace, ""}); err != nil {
			return nil, err
		}
		var list v1.SLOPolicyList
		if err := s.reader.List(ctx, &list, client.InNamespace(r.Namespace)); err != nil {
			return nil, err
		}
		for _, p := range list.Items {
			if p.Spec.Service == r.Service && p.Spec.Env == env {
				policies = append(policies, p)
			}
		}
		if len(policies) == 0 {
			return nil, newProblem(http.StatusNotFound, fmt.Sprintf("no SLOPolicy for service %q env %q in namespace %s", r.Service, env, r.Namespace))
		}
	}
	res := &ReleaseCheckResult{Allowed: true, Message: "allowed", Gates: []Gate{}}
	now := s.clock.Now()
	for i := range policies {
		g := gateOf(&policies[i], now)
		res.Gates = append(res.Gates, g)
		if !g.Allowed && res.Allowed {
			res.Allowed = false
			res.Message = fmt.Sprintf("release blocked by slopolicy/%s: %s: %s", g.Policy, g.Reason, g.Message)
		}
	}
	return res, nil
}

// gateOf is the gate JSON of p at now.
func gateOf(p *v1.SLOPolicy, now time.Time) Gate {
	v := slo.Effective(p, now)
	g := Gate{
		Namespace: p.Namespace, Policy: p.Name, Service: p.Spec.Service, Env: p.Spec.Env,
		Allowed: v.Allowed(), Decision: v.Decision, Reason: v.Reason, Message: v.Message, Stale: v.Stale,
		LastEvaluatedAt: p.Status.LastEvaluatedAt, Observed: p.Status.Observed, Bypass: p.Status.Bypass,
	}
	if p.Status.Gate != nil {
		g.Since = p.Status.Gate.Since
	}
	return g
}
