package work

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/internal/silence"
)

// The actions behind the work-queue endpoints, the tool endpoint and the MCP
// tools. Each judges the caller as kubectl would (see docs/adr/two-identities.md): a
// SubjectAccessReview for every verb the same change made with kubectl or
// the CLI needs, then the rules the admission policies would apply to the
// caller (the claim names the caller, only the holder renews, acks or
// fails, acking an Alert nobody holds needs acknowledge), and only then the
// operator writes, as itself, with the same libraries as the CLI.

// Queue serves the work queue: claim, renew, ack, fail, to-incident and
// the incident actions, over HTTP (Routes) and for the agent protocols.
type Queue struct {
	// Client writes as the operator, uncached (claim.Claimer and
	// incident.Convert decide on fresh state).
	Client client.Client
	// Reader reads the manager's cache (claim candidates, policies).
	Reader client.Reader
	Auth   *base.Authenticator
	Clock  clock.PassiveClock
	// seen remembers the Alerts this replica's claims took, so an agent's
	// ack or renew that comes back to it writes without reading first.
	seen *claim.Seen
}

// New is q, remembering the Alerts it claims.
func New(q Queue) *Queue {
	q.seen = claim.NewSeen(claimsSeen)
	return &q
}

// claimer works Alerts for u: claims record u as holderUser and acks as
// ack.by, renew, ack and fail check that u holds the lease, and admit
// applies the admission policy's acknowledge rule. Candidates come from
// the server's Alert cache, in namespaces where u was found allowed to
// list Alerts, so a claim costs the API server no LIST.
func (s *Queue) claimer(u *base.User) *claim.Claimer {
	return &claim.Claimer{Client: s.Client, Lister: s.Reader, User: u.Username, Clock: s.Clock, Admit: s.admit(u), Seen: s.seen}
}

// claimsSeen is how many claimed Alerts a replica remembers: forty agents'
// batches of 25 in flight; a miss costs only the read.
const claimsSeen = 1024

// admit is the part of the admission policy alertbridge-alert-status that
// the claim library does not check itself: a silenced Alert is not claimed,
// and acking an Alert nobody holds needs the virtual verb
// acknowledge on alerts/status (on-call). It refuses with the policy's own
// words.
func (s *Queue) admit(u *base.User) func(context.Context, string, *v1.Alert) error {
	return func(ctx context.Context, op string, a *v1.Alert) error {
		if op == "claim" && alertstate.Silenced(&a.Status) {
			return &alertstate.SilencedError{Alert: a.Name, Message: silence.SilencedBy(&a.Status)}
		}
		if op != "ack" || (a.Status.Phase != v1.AlertNew && a.Status.Phase != v1.AlertFailed) {
			return nil
		}
		ok, err := s.Auth.May(ctx, u, base.NeedOf("acknowledge", "alerts/status", a.Namespace, a.Name))
		if err != nil || ok {
			return err
		}
		return base.Refuse(http.StatusForbidden, fmt.Sprintf("status.phase: acking Alert %s, which nobody holds, needs the acknowledge verb "+
			"on alerts/status (the alertbridge-oncall role); %s may ack only the Alerts it claimed", a.Name, u.Username))
	}
}

// windowOf is windowMinutes, base.DefaultWindowMinutes when absent.
func windowOf(p *field.Path, m *int64) (time.Duration, *field.Error) {
	if m == nil {
		return base.DefaultWindowMinutes * time.Minute, nil
	}
	if *m < 0 || *m > base.MaxWindowMinutes {
		return 0, field.Invalid(p, *m, "must be a whole number of minutes from 0 (no window) to "+strconv.Itoa(base.MaxWindowMinutes))
	}
	return time.Duration(*m) * time.Minute, nil
}

// Claim is POST /v1/alerts/claim.
func (s *Queue) Claim(ctx context.Context, u *base.User, r base.ClaimRequest) (*base.ClaimResult, error) {
	var errs field.ErrorList
	errs = append(errs, base.DNSLabel(field.NewPath("namespace"), r.Namespace, false)...)
	window, ferr := windowOf(field.NewPath("windowMinutes"), r.WindowMinutes)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	limit := r.Limit
	switch {
	case limit == 0:
		limit = base.DefaultClaimLimit
	case limit < 1 || limit > base.MaxClaimLimit:
		errs = append(errs, field.Invalid(field.NewPath("limit"), limit, fmt.Sprintf("must be from 1 to %d", base.MaxClaimLimit)))
	}
	errs = append(errs, base.TooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	ttl, ferr := base.Duration(field.NewPath("lockTTL"), r.LockTTL, time.Second, alertstate.MaxLeaseSeconds*time.Second)
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
	errs = append(errs, base.TooLong(field.NewPath("env"), r.Env, 63)...)
	errs = append(errs, base.TooLong(field.NewPath("service"), r.Service, 63)...)
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	req := claim.Request{
		Namespace: r.Namespace, Window: window, Limit: limit, Owner: owner(r.Owner, u), LockTTL: ttl,
		Env: r.Env, Service: r.Service,
	}
	if r.Namespace != "" {
		if err := s.Auth.Check(ctx, u, claimNeeds(r.Namespace)...); err != nil {
			return nil, err
		}
	} else {
		nss, everywhere, err := s.claimNamespaces(ctx, u)
		switch {
		case err != nil:
			return nil, err
		case !everywhere && len(nss) == 0:
			return &base.ClaimResult{Alerts: []base.WorkAlert{}, NothingToClaim: true,
				Message: "nothing to claim: no New Alert in the namespaces you may claim in"}, nil
		}
		req.Namespaces = nss
	}
	got, err := s.claimer(u).Claim(ctx, req)
	err = lockTTLError(err)
	res := &base.ClaimResult{Alerts: make([]base.WorkAlert, 0, len(got))}
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
func claimNeeds(ns string) []base.Need {
	return []base.Need{base.NeedOf("list", "alerts", ns, ""), base.NeedOf("patch", "alerts/status", ns, "")}
}

// claimNamespaces decides, before anything is listed from the API server,
// where a claim without a namespace takes from: everywhere for a caller
// who may claim cluster-wide; else the namespaces holding New Alerts in the
// server's cache where the caller may claim. At most base.MaxReviewedNamespaces
// namespaces are checked: first those the caller worked in (it holds or
// acked an Alert there), then those whose New Alerts are the newest.
// Allowed in one of them but with nothing New there is nothing to claim;
// allowed in none is 403, asking for the namespace. No namespace holding a
// New Alert is nothing to claim whoever asks.
func (s *Queue) claimNamespaces(ctx context.Context, u *base.User) (nss []string, everywhere bool, err error) {
	if everywhere, err = s.Auth.May(ctx, u, claimNeeds("")...); err != nil || everywhere {
		return nil, everywhere, err
	}
	var list v1.AlertList
	if err := s.Reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, false, base.Unavailable("cannot read Alerts now: " + err.Error())
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
	for _, ns := range order[:min(len(order), base.MaxReviewedNamespaces)] {
		ok, err := s.Auth.May(ctx, u, claimNeeds(ns)...)
		if err != nil {
			return nil, false, err
		}
		somewhere = somewhere || ok
		if ok && hasNew[ns] {
			nss = append(nss, ns)
		}
	}
	if !somewhere {
		return nil, false, base.Refuse(http.StatusForbidden, fmt.Sprintf("user %s may claim Alerts in none of the namespaces checked "+
			"(those it worked in, then those with the newest New Alerts, at most %d): claiming needs list on alerts and patch on alerts/status "+
			"(the alertbridge-agent role); name the namespace to claim in with namespace", u.Username, base.MaxReviewedNamespaces))
	}
	return nss, false, nil
}

// Renew is POST /v1/alerts/{namespace}/{name}/renew.
func (s *Queue) Renew(ctx context.Context, u *base.User, at base.Ref, r base.RenewRequest) (*base.WorkAlert, error) {
	errs := at.Validate(field.NewPath("alert"))
	errs = append(errs, base.TooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	ttl, ferr := base.Duration(field.NewPath("lockTTL"), r.LockTTL, time.Second, alertstate.MaxLeaseSeconds*time.Second)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	return s.leaseAction(ctx, u, at, func(cl *claim.Claimer) (*v1.Alert, error) {
		a, err := cl.Renew(ctx, at.Key(), s.leaseOwner(ctx, u, at, r.Owner), ttl)
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
		return base.Invalid(field.ErrorList{tl.Field(field.NewPath("lockTTL"))})
	}
	return err
}

// Ack is POST /v1/alerts/{namespace}/{name}/ack.
func (s *Queue) Ack(ctx context.Context, u *base.User, at base.Ref, r base.AckRequest) (*base.WorkAlert, error) {
	errs := at.Validate(field.NewPath("alert"))
	errs = append(errs, base.TooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	errs = append(errs, base.TooLong(field.NewPath("note"), r.Note, maxNote)...)
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	return s.leaseAction(ctx, u, at, func(cl *claim.Claimer) (*v1.Alert, error) {
		return cl.Ack(ctx, at.Key(), s.leaseOwner(ctx, u, at, r.Owner), r.Note)
	})
}

// Fail is POST /v1/alerts/{namespace}/{name}/fail.
func (s *Queue) Fail(ctx context.Context, u *base.User, at base.Ref, r base.FailRequest) (*base.WorkAlert, error) {
	errs := at.Validate(field.NewPath("alert"))
	errs = append(errs, base.TooLong(field.NewPath("owner"), r.Owner, maxOwner)...)
	errs = append(errs, base.TooLong(field.NewPath("error"), r.Error, maxLastError)...)
	after, ferr := base.Duration(field.NewPath("retryAfter"), r.RetryAfter, 0, 30*24*time.Hour)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	return s.leaseAction(ctx, u, at, func(cl *claim.Claimer) (*v1.Alert, error) {
		return cl.Fail(ctx, at.Key(), s.leaseOwner(ctx, u, at, r.Owner), r.Error, after)
	})
}

// Requeue is POST /v1/alerts/{namespace}/{name}/requeue: a Processing
// Alert (whoever holds it) or a Failed one back to New, for a caller who
// may patch its status and holds the virtual verb requeue on alerts/status
// (on-call), as the admission policy would require of them; the caller is
// recorded in status.requeued.by.
func (s *Queue) Requeue(ctx context.Context, u *base.User, at base.Ref, r base.RequeueRequest) (*base.WorkAlert, error) {
	errs := at.Validate(field.NewPath("alert"))
	if strings.TrimSpace(r.Reason) == "" {
		errs = append(errs, field.Required(field.NewPath("reason"), "say why the Alert is requeued"))
	}
	errs = append(errs, base.TooLong(field.NewPath("reason"), r.Reason, maxNote)...)
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	if err := s.Auth.Check(ctx, u, base.NeedOf("patch", "alerts/status", at.Namespace, at.Name),
		base.NeedOf("requeue", "alerts/status", at.Namespace, at.Name)); err != nil {
		return nil, err
	}
	a, err := s.claimer(u).Requeue(ctx, at.Key(), r.Reason)
	if err != nil {
		return nil, err
	}
	w := workAlert(a)
	return &w, nil
}

// leaseOwner is the owner name a renew, ack or fail acts as: the one given,
// else the owner of the lease when u holds it (a tool's fail and ack
// name no owner: the user is what the API server enforces), else u's name.
func (s *Queue) leaseOwner(ctx context.Context, u *base.User, at base.Ref, given string) string {
	if given != "" {
		return given
	}
	var a v1.Alert
	if err := s.Client.Get(ctx, at.Key(), &a); err == nil && a.Status.Claim != nil && a.Status.Claim.HolderUser == u.Username {
		return a.Status.Claim.HolderIdentity
	}
	return u.Username
}

// leaseAction runs a renew, ack or fail for u, who needs patch on that
// Alert's status (as kubectl patch --subresource=status does).
func (s *Queue) leaseAction(ctx context.Context, u *base.User, at base.Ref, op func(*claim.Claimer) (*v1.Alert, error)) (*base.WorkAlert, error) {
	if err := s.Auth.Check(ctx, u, base.NeedOf("patch", "alerts/status", at.Namespace, at.Name)); err != nil {
		return nil, err
	}
	a, err := op(s.claimer(u))
	if err != nil {
		return nil, err
	}
	w := workAlert(a)
	return &w, nil
}

// ToIncident is POST /v1/alerts/{namespace}/{name}/to-incident: what
// `alertbridge alerts to-incident` needs — read the Alert, list and create
// Incidents, append to their status (patch incidents/status), and link the
// Alert (patch alerts/status, which the admission policy allows to those
// who may patch incidents/status). The operator writes, so the rules the
// admission policies would apply to the caller are applied here: an Alert
// someone else holds is not the caller's to link (409 naming the holder,
// before anything is written), and the entries name the caller.
func (s *Queue) ToIncident(ctx context.Context, u *base.User, at base.Ref, r base.ToIncidentRequest) (*base.ToIncidentResult, error) {
	errs := at.Validate(field.NewPath("alert"))
	sev := v1.Severity(strings.ToUpper(r.SeverityCap))
	if sev != "" && !slices.Contains([]v1.Severity{v1.SeverityP0, v1.SeverityP1, v1.SeverityP2, v1.SeverityP3, v1.SeverityP4}, sev) {
		errs = append(errs, field.NotSupported(field.NewPath("severityCap"), r.SeverityCap, []string{"P0", "P1", "P2", "P3", "P4"}))
	}
	window, ferr := base.Duration(field.NewPath("dedupeWindow"), r.DedupeWindow, 0, 30*24*time.Hour)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	errs = append(errs, base.TooLong(field.NewPath("signature"), r.Signature, 256)...)
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	if err := s.Auth.Check(ctx, u,
		base.NeedOf("get", "alerts", at.Namespace, at.Name),
		base.NeedOf("list", "incidents", at.Namespace, ""),
		base.NeedOf("create", "incidents", at.Namespace, ""),
		base.NeedOf("patch", "incidents/status", at.Namespace, ""),
		base.NeedOf("patch", "alerts/status", at.Namespace, at.Name),
	); err != nil {
		return nil, err
	}
	res, err := incident.Convert(ctx, s.Client, at.Key(), incident.Options{
		SeverityCap: sev, DedupeWindow: window, Signature: r.Signature, Clock: s.Clock, Caller: u.Username,
	})
	if err != nil {
		return nil, err
	}
	out := toIncidentResult(at.String(), res)
	return &out, nil
}

// NoteIncident is POST /v1/incidents/{namespace}/{name}/note: a Note entry
// in the caller's name (incidents/status) and spec.note.
func (s *Queue) NoteIncident(ctx context.Context, u *base.User, at base.Ref, r base.IncidentNoteRequest) (*base.WorkIncident, error) {
	errs := at.Validate(field.NewPath("incident"))
	if strings.TrimSpace(r.Note) == "" {
		errs = append(errs, field.Required(field.NewPath("note"), ""))
	}
	errs = append(errs, base.TooLong(field.NewPath("note"), r.Note, maxNote)...)
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	if err := s.Auth.Check(ctx, u, base.NeedOf("patch", "incidents", at.Namespace, at.Name), base.NeedOf("patch", "incidents/status", at.Namespace, at.Name)); err != nil {
		return nil, err
	}
	inc, err := incident.AddNote(ctx, s.Client, at.Key(), r.Note, u.Username, s.Clock)
	if err != nil {
		return nil, err
	}
	w := workIncident(inc)
	return &w, nil
}

// CloseIncident is POST /v1/incidents/{namespace}/{name}/close.
func (s *Queue) CloseIncident(ctx context.Context, u *base.User, at base.Ref, r base.IncidentCloseRequest) (*base.WorkIncident, error) {
	return s.SetIncidentState(ctx, u, at, base.IncidentStateRequest{State: string(v1.IncidentClosed), Note: r.Note})
}

// The HTTP API notes, moves and closes Incidents (spec.state, spec.note) for a caller allowed to patch them (SubjectAccessReview), as the operator (see docs/adr/two-identities.md).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=patch

// SetIncidentState is POST /v1/incidents/{namespace}/{name}/state.
func (s *Queue) SetIncidentState(ctx context.Context, u *base.User, at base.Ref, r base.IncidentStateRequest) (*base.WorkIncident, error) {
	errs := at.Validate(field.NewPath("incident"))
	states := []v1.IncidentState{v1.IncidentOpen, v1.IncidentMitigating, v1.IncidentResolved, v1.IncidentClosed}
	i := slices.IndexFunc(states, func(st v1.IncidentState) bool { return strings.EqualFold(string(st), r.State) })
	if i < 0 {
		errs = append(errs, field.NotSupported(field.NewPath("state"), r.State, []string{"Open", "Mitigating", "Resolved", "Closed"}))
	} else if states[i] == v1.IncidentClosed && strings.TrimSpace(r.Note) == "" {
		errs = append(errs, field.Required(field.NewPath("note"), "a note is required to close an Incident"))
	}
	errs = append(errs, base.TooLong(field.NewPath("note"), r.Note, maxIncidentNote)...)
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	if err := s.Auth.Check(ctx, u, base.NeedOf("patch", "incidents", at.Namespace, at.Name)); err != nil {
		return nil, err
	}
	inc, err := incident.SetState(ctx, s.Client, at.Key(), states[i], r.Note)
	if err != nil {
		return nil, err
	}
	w := workIncident(inc)
	return &w, nil
}
