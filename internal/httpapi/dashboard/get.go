package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/incident"
)

// getRoutes serve the reads of one object. They answer as the work queue's
// actions do (base.Action): 401 without a valid token, 403 when the caller
// may not get the object, 404 when it is not there, with the problem JSON.
func (s *Board) getRoutes(m base.Mux) {
	m.Handle("GET /v1/incidents/{namespace}/{name}", base.Action(s.Auth, func(ctx context.Context, u *base.User, r *http.Request) (any, error) {
		pm, err := boolParam(r, "postmortem")
		if err != nil {
			return nil, err
		}
		at := base.PathRef(r)
		return s.GetIncident(ctx, u, base.IncidentGetRequest{Namespace: at.Namespace, Name: at.Name, Postmortem: pm})
	}))
	m.Handle("GET /v1/alerts/{namespace}/{name}", base.Action(s.Auth, func(ctx context.Context, u *base.User, r *http.Request) (any, error) {
		at := base.PathRef(r)
		return s.GetAlert(ctx, u, base.AlertGetRequest(at))
	}))
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, base.Invalid(field.ErrorList{field.Invalid(field.NewPath(name), v, "must be true or false")})
	}
	return b, nil
}

// live reads the object a read names: through the API's uncached client
// when it has one, so that an agent reads what it has just written (its
// claim, its note), else from the cache.
func (s *Board) live() client.Reader {
	if s.Client != nil {
		return s.Client
	}
	return s.Reader
}

// GetIncident is GET /v1/incidents/{namespace}/{name}: the Incident for a
// caller who may get it, with each linked Alert the caller may get as it
// is now (from the cache; the others by ref only), and on request the
// postmortem draft made from it (incident.Postmortem, as on close; nothing
// is written).
func (s *Board) GetIncident(ctx context.Context, u *base.User, r base.IncidentGetRequest) (*base.IncidentDetail, error) {
	at := base.Ref{Namespace: r.Namespace, Name: r.Name}
	if errs := at.Validate(field.NewPath("incident")); len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	if err := s.Auth.Check(ctx, u, base.NeedOf("get", resIncidents, at.Namespace, at.Name)); err != nil {
		return nil, err
	}
	var inc v1.Incident
	if err := s.live().Get(ctx, at.Key(), &inc); err != nil {
		return nil, err
	}
	alerts, err := s.linkedAlerts(ctx, u, &inc)
	if err != nil {
		return nil, err
	}
	d := &base.IncidentDetail{
		IncidentRef: at.String(), Namespace: inc.Namespace, Name: inc.Name, UID: string(inc.UID),
		CreatedAt: inc.CreationTimestamp.UTC(), Labels: inc.Labels,
		Spec: inc.Spec, Status: inc.Status, Triage: base.TriageOf(&inc), Alerts: alerts,
	}
	if r.Postmortem {
		d.Postmortem = incident.Postmortem(&inc)
	}
	return d, nil
}

// linkedAlerts reads the Alerts of inc's alertRefs the caller may get: one
// SubjectAccessReview for the namespace, else one per Alert (at most
// incident.MaxAlertRefs, each answer cached).
func (s *Board) linkedAlerts(ctx context.Context, u *base.User, inc *v1.Incident) ([]base.LinkedAlert, error) {
	out := make([]base.LinkedAlert, 0, len(inc.Status.AlertRefs))
	if len(inc.Status.AlertRefs) == 0 {
		return out, nil
	}
	all, err := s.Auth.May(ctx, u, base.NeedOf("get", resAlerts, inc.Namespace, ""))
	if err != nil {
		return nil, err
	}
	for _, ref := range inc.Status.AlertRefs {
		at := base.Ref{Namespace: inc.Namespace, Name: ref}
		if ns, name, ok := strings.Cut(ref, "/"); ok {
			at = base.Ref{Namespace: ns, Name: name}
		}
		l := base.LinkedAlert{AlertRef: at.String()}
		may := all && at.Namespace == inc.Namespace
		if !may {
			if may, err = s.Auth.May(ctx, u, base.NeedOf("get", resAlerts, at.Namespace, at.Name)); err != nil {
				return nil, err
			}
		}
		if may {
			var a v1.Alert
			switch err := s.Reader.Get(ctx, at.Key(), &a); {
			case apierrors.IsNotFound(err):
				l.Gone = true
			case err != nil:
				return nil, err
			default:
				w := base.WorkAlertOf(&a)
				l.Alert = &w
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// GetAlert is GET /v1/alerts/{namespace}/{name}: the Alert for a caller
// who may get it, and the summary of its Incident when the caller may get
// that too (else only its ref).
func (s *Board) GetAlert(ctx context.Context, u *base.User, r base.AlertGetRequest) (*base.AlertDetail, error) {
	at := base.Ref(r)
	if errs := at.Validate(field.NewPath("alert")); len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	if err := s.Auth.Check(ctx, u, base.NeedOf("get", resAlerts, at.Namespace, at.Name)); err != nil {
		return nil, err
	}
	var a v1.Alert
	if err := s.live().Get(ctx, at.Key(), &a); err != nil {
		return nil, err
	}
	d := &base.AlertDetail{WorkAlert: base.WorkAlertOf(&a)}
	if ref := a.Status.IncidentRef; ref != nil && ref.Name != "" {
		inc := base.Ref{Namespace: a.Namespace, Name: ref.Name}
		d.IncidentRef = inc.String()
		may, err := s.Auth.May(ctx, u, base.NeedOf("get", resIncidents, inc.Namespace, inc.Name))
		if err != nil {
			return nil, err
		}
		if may {
			var i v1.Incident
			switch err := s.Reader.Get(ctx, inc.Key(), &i); {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, err
			default:
				w := base.WorkIncidentOf(&i)
				d.LinkedIncident = &w
			}
		}
	}
	return d, nil
}
