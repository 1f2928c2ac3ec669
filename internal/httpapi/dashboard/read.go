// Package dashboard is what the HTTP API serves people and the read side
// agents share: the page (/ and /ui/), the read endpoints it and agents
// call (GET /v1/alerts, /v1/alerts/dashboard, /v1/alerts/trends,
// /v1/incidents/open, and one Incident or Alert by name), from the cache or the PostgreSQL mirror, and the
// page's own actions (GET /v1/permissions, the emergency bypass).
package dashboard

import (
	"cmp"
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/query"
)

// History is the PostgreSQL mirror's read side (*mirror.Store). With it the
// list, dashboard and open-incidents endpoints answer from the database —
// history beyond what is still in the cluster — in the same JSON shape as
// from the cache.
type History interface {
	Alerts(ctx context.Context, namespaces []string, since time.Time) ([]v1.Alert, error)
	OpenIncidents(ctx context.Context, namespaces []string) ([]v1.Incident, error)
}

// Resources the read endpoints authorise against.
const (
	resAlerts      = "alerts"
	resIncidents   = "incidents"
	resSLOPolicies = "slopolicies"
	resSilences    = "silences"
)

// Board serves the dashboard and the read endpoints.
type Board struct {
	// Reader reads the manager's cache.
	Reader client.Reader
	Auth   *base.Authenticator
	Clock  clock.PassiveClock
	// History, when set (the PostgreSQL mirror), answers the list,
	// dashboard and open-incidents endpoints instead of the cache.
	History History
	// Anonymous lets callers without a token read the dashboard JSON (and
	// so the page's data), across all namespaces.
	Anonymous bool
	// Client writes the bypass as the operator (ActionRoutes), and reads
	// the one Incident or Alert a read names, after the caller's access is
	// checked, so that an agent reads what it has just written; nil: they
	// are read from the cache.
	Client client.Client
}

// Routes serve the read endpoints, the trends and the page.
func (s *Board) Routes(m base.Mux) {
	m.Handle("GET /v1/alerts", http.HandlerFunc(s.serveAlertList))
	m.Handle("GET /v1/alerts/dashboard", http.HandlerFunc(s.serveDashboard))
	m.Handle("GET /v1/incidents/open", http.HandlerFunc(s.serveOpenIncidents))
	s.getRoutes(m) // one Incident, one Alert
	s.trendRoutes(m)
	s.pageRoutes(m)
}

// readParams are the query parameters of the read endpoints, each accepted
// in camelCase and in snake_case (the tool endpoint's spelling).
type readParams struct {
	namespace string
	filter    query.AlertFilter
}

// paramError names the parameter that is wrong.
type paramError struct{ name, msg string }

func (e *paramError) Error() string { return e.name + ": " + e.msg }

// param returns the value of the first of names present, and its name.
func param(q url.Values, names ...string) (string, string, bool) {
	for _, n := range names {
		if vs, ok := q[n]; ok {
			return strings.TrimSpace(strings.Join(vs, ",")), n, true
		}
	}
	return "", names[0], false
}

func parseReadParams(q url.Values) (readParams, error) {
	var p readParams
	if ns, name, ok := param(q, "namespace"); ok && ns != "" {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return p, &paramError{name, "not a namespace name: " + strings.Join(errs, "; ")}
		}
		p.namespace = ns
	}
	p.filter.Window = base.DefaultWindowMinutes * time.Minute
	if v, name, ok := param(q, "windowMinutes", "window_minutes"); ok {
		m, err := strconv.ParseInt(v, 10, 64)
		if err != nil || m < 0 || m > base.MaxWindowMinutes {
			return p, &paramError{name, "must be a whole number of minutes from 0 (no window) to " + strconv.Itoa(base.MaxWindowMinutes) + ", got " + strconv.Quote(v)}
		}
		p.filter.Window = time.Duration(m) * time.Minute
	}
	if v, name, ok := param(q, "statusIn", "status_in", "status"); ok {
		phases, err := query.ParsePhases([]string{v})
		if err != nil {
			return p, &paramError{name, err.Error()}
		}
		p.filter.Phases = phases
	}
	for _, f := range []struct {
		dst   *string
		names []string
	}{{&p.filter.Env, []string{"env"}}, {&p.filter.Source, []string{"source"}}, {&p.filter.Service, []string{"service"}}} {
		if v, name, ok := param(q, f.names...); ok {
			if len(v) > 256 {
				return p, &paramError{name, "longer than 256 characters"}
			}
			*f.dst = v
		}
	}
	return p, nil
}

// begin parses the parameters and authenticates the caller: 400 names a bad
// parameter, 401 without a valid token (unless anonymous), 403 when a
// namespace is named and the caller may not list resource there.
func (s *Board) begin(w http.ResponseWriter, r *http.Request, resource string, anonymous bool) (readParams, *caller, bool) {
	p, err := parseReadParams(r.URL.Query())
	if err != nil {
		base.WriteError(w, http.StatusBadRequest, err.Error())
		return p, nil, false
	}
	c, ok := s.authenticate(w, r, anonymous)
	if !ok {
		return p, nil, false
	}
	if p.namespace != "" {
		allowed, err := c.may(r.Context(), resource, p.namespace)
		if err != nil {
			unavailable(w, r, err, "cannot check access now")
			return p, nil, false
		}
		if !allowed {
			base.WriteError(w, http.StatusForbidden, "user "+c.name()+" cannot list "+resource+" in namespace "+p.namespace)
			return p, nil, false
		}
	}
	return p, c, true
}

func (s *Board) serveAlertList(w http.ResponseWriter, r *http.Request) {
	p, c, ok := s.begin(w, r, resAlerts, false)
	if !ok {
		return
	}
	now := s.Clock.Now()
	alerts, err := s.readAlerts(r.Context(), c, p, now)
	if err != nil {
		unavailable(w, r, err, "cannot read Alerts now")
		return
	}
	base.WriteJSON(w, http.StatusOK, query.ListAlerts(alerts, p.filter, p.namespace, now))
}

func (s *Board) serveOpenIncidents(w http.ResponseWriter, r *http.Request) {
	p, c, ok := s.begin(w, r, resIncidents, false)
	if !ok {
		return
	}
	incidents, err := s.readOpenIncidents(r.Context(), c, p.namespace, p.namespace)
	if err != nil {
		unavailable(w, r, err, "cannot read Incidents now")
		return
	}
	base.WriteJSON(w, http.StatusOK, query.ListOpenIncidents(incidents, p.namespace, p.filter.Service))
}

func (s *Board) serveDashboard(w http.ResponseWriter, r *http.Request) {
	p, c, ok := s.begin(w, r, resAlerts, s.Anonymous)
	if !ok {
		return
	}
	ctx, now := r.Context(), s.Clock.Now()
	alerts, err := s.readAlerts(ctx, c, p, now)
	if err != nil {
		unavailable(w, r, err, "cannot read Alerts now")
		return
	}
	// Incidents and gates are shown where the caller may list them; a
	// caller who may only list Alerts still gets the Alert half.
	incidents, err := s.readOpenIncidents(ctx, c, p.namespace, "")
	if err != nil {
		unavailable(w, r, err, "cannot read Incidents now")
		return
	}
	policies, err := s.readPolicies(ctx, c, p.namespace)
	if err != nil {
		unavailable(w, r, err, "cannot read SLOPolicies now")
		return
	}
	silences, err := s.readSilences(ctx, c, p.namespace)
	if err != nil {
		unavailable(w, r, err, "cannot read Silences now")
		return
	}
	base.WriteJSON(w, http.StatusOK, query.BuildDashboard(alerts, incidents, policies, silences, p.namespace, p.filter.Window, now))
}

// readSilences reads the Silences of ns (""=all) the caller may list,
// from the cache: whether a Silence is active is live state.
func (s *Board) readSilences(ctx context.Context, c *caller, ns string) ([]v1.Silence, error) {
	var list v1.SilenceList
	if err := s.Reader.List(ctx, &list, inNamespace(ns)...); err != nil {
		return nil, err
	}
	return visible(ctx, c, resSilences, "", list.Items, func(s *v1.Silence) string { return s.Namespace })
}

// withLiveSilencing copies the Silenced condition of the Alerts still in
// the cluster onto items read from the mirror, whose rows keep no
// conditions: whether a Silence silences an Alert is live state, like a
// gate.
func (s *Board) withLiveSilencing(ctx context.Context, ns string, items []v1.Alert) error {
	var list v1.AlertList
	if err := s.Reader.List(ctx, &list, inNamespace(ns)...); err != nil {
		return err
	}
	live := make(map[types.UID][]metav1.Condition, len(list.Items))
	for i := range list.Items {
		if c := meta.FindStatusCondition(list.Items[i].Status.Conditions, v1.AlertConditionSilenced); c != nil {
			live[list.Items[i].UID] = []metav1.Condition{*c}
		}
	}
	for i := range items {
		if c, ok := live[items[i].UID]; ok {
			items[i].Status.Conditions = c
		}
	}
	return nil
}

// readAlerts reads the Alerts of the caller's namespaces inside the window:
// from the mirror when configured, else from the cache.
func (s *Board) readAlerts(ctx context.Context, c *caller, p readParams, now time.Time) ([]v1.Alert, error) {
	var items []v1.Alert
	if s.History != nil {
		var since time.Time
		if p.filter.Window > 0 {
			since = now.Add(-p.filter.Window)
		}
		var err error
		if items, err = s.History.Alerts(ctx, namespaces(p.namespace), since); err != nil {
			return nil, err
		}
		if err := s.withLiveSilencing(ctx, p.namespace, items); err != nil {
			return nil, err
		}
	} else {
		var list v1.AlertList
		if err := s.Reader.List(ctx, &list, inNamespace(p.namespace)...); err != nil {
			return nil, err
		}
		items = list.Items
	}
	return visible(ctx, c, resAlerts, p.namespace, items, func(a *v1.Alert) string { return a.Namespace })
}

// readOpenIncidents reads the open Incidents of ns (""=all) the caller may
// list; checked names a namespace already authorised for incidents.
func (s *Board) readOpenIncidents(ctx context.Context, c *caller, ns, checked string) ([]v1.Incident, error) {
	var items []v1.Incident
	if s.History != nil {
		var err error
		if items, err = s.History.OpenIncidents(ctx, namespaces(ns)); err != nil {
			return nil, err
		}
		if err := s.withNotifications(ctx, ns, items); err != nil {
			return nil, err
		}
	} else {
		var list v1.IncidentList
		if err := s.Reader.List(ctx, &list, inNamespace(ns)...); err != nil {
			return nil, err
		}
		items = query.OpenIncidents(list.Items, "")
	}
	return visible(ctx, c, resIncidents, checked, items, func(i *v1.Incident) string { return i.Namespace })
}

// withNotifications fills in the delivery records of open Incidents read
// from the mirror, which keeps no status.notifications: they are the live
// state of an open Incident (what its Receivers were told), read from the
// cache by UID. An Incident no longer in the cluster keeps none.
func (s *Board) withNotifications(ctx context.Context, ns string, items []v1.Incident) error {
	if len(items) == 0 {
		return nil
	}
	var list v1.IncidentList
	// Read only: what is kept is copied below.
	if err := s.Reader.List(ctx, &list, append(inNamespace(ns), client.UnsafeDisableDeepCopy)...); err != nil {
		return err
	}
	live := make(map[types.UID][]v1.IncidentNotification, len(list.Items))
	for i := range list.Items {
		if n := list.Items[i].Status.Notifications; len(n) > 0 {
			live[list.Items[i].UID] = n
		}
	}
	for i := range items {
		if n, ok := live[items[i].UID]; ok {
			items[i].Status.Notifications = make([]v1.IncidentNotification, len(n))
			for j := range n {
				n[j].DeepCopyInto(&items[i].Status.Notifications[j])
			}
		}
	}
	return nil
}

// readPolicies reads the gates from the cache: their live status is what
// release controllers act on.
func (s *Board) readPolicies(ctx context.Context, c *caller, ns string) ([]v1.SLOPolicy, error) {
	var list v1.SLOPolicyList
	if err := s.Reader.List(ctx, &list, inNamespace(ns)...); err != nil {
		return nil, err
	}
	return visible(ctx, c, resSLOPolicies, "", list.Items, func(p *v1.SLOPolicy) string { return p.Namespace })
}

// visible keeps the items in namespaces where the caller may list resource.
// checked names a namespace already authorised by begin. A caller who may
// not list cluster-wide is asked about at most base.MaxReviewedNamespaces
// namespaces, those of the most recent items first: a read across more
// covers the most recently active of them (a namespace named in the
// request covers any).
func visible[T any](ctx context.Context, c *caller, resource, checked string, items []T, nsOf func(*T) string) ([]T, error) {
	if c.anonymous() {
		return items, nil
	}
	if checked == "" {
		all, err := c.may(ctx, resource, "")
		if err != nil {
			return nil, err
		}
		if all {
			return items, nil
		}
	}
	newest := map[string]time.Time{}
	for i := range items {
		if ns := nsOf(&items[i]); ns != checked || checked == "" {
			if t, seen := newest[ns]; !seen || recency(&items[i]).After(t) {
				newest[ns] = recency(&items[i])
			}
		}
	}
	unchecked := slices.SortedFunc(maps.Keys(newest), func(a, b string) int {
		return cmp.Or(newest[b].Compare(newest[a]), cmp.Compare(a, b))
	})
	allowed, err := c.mayEach(ctx, resource, unchecked)
	if err != nil {
		return nil, err
	}
	out := items[:0:0]
	for i := range items {
		if ns := nsOf(&items[i]); (ns == checked && checked != "") || allowed[ns] {
			out = append(out, items[i])
		}
	}
	return out, nil
}

// recency is when an item was last active: an Alert's last occurrence, else
// when the object was made.
func recency(item any) time.Time {
	switch o := item.(type) {
	case *v1.Alert:
		return query.LastSeen(o)
	case *query.GateEvaluation:
		return o.At
	case metav1.Object:
		return o.GetCreationTimestamp().Time
	}
	return time.Time{}
}

func namespaces(ns string) []string {
	if ns == "" {
		return nil
	}
	return []string{ns}
}

func inNamespace(ns string) []client.ListOption {
	if ns == "" {
		return nil
	}
	return []client.ListOption{client.InNamespace(ns)}
}

func unavailable(w http.ResponseWriter, r *http.Request, err error, msg string) {
	ctrl.LoggerFrom(r.Context()).Error(err, "Failed to answer a read request", "path", r.URL.Path)
	base.WriteError(w, http.StatusServiceUnavailable, msg)
}
