package work

import (
	"context"
	"net/http"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// Routes serve the work queue: claim, renew, ack, fail, to-incident and
// the incident actions. Each authenticates the caller, then the action
// authorises the exact verbs (SubjectAccessReview) before the operator writes.
func (s *Queue) Routes(m base.Mux) {
	m.Handle("POST /v1/alerts/claim", base.Action(s.Auth, func(ctx context.Context, u *base.User, r *http.Request) (any, error) {
		var req base.ClaimRequest
		if err := base.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		return s.Claim(ctx, u, req)
	}))
	alertAction := func(name string, f func(context.Context, *base.User, base.Ref, []byte) (any, error)) {
		m.Handle("POST /v1/alerts/{namespace}/{name}/"+name, base.Action(s.Auth, func(ctx context.Context, u *base.User, r *http.Request) (any, error) {
			body, err := base.ReadAll(r)
			if err != nil {
				return nil, err
			}
			return f(ctx, u, base.PathRef(r), body)
		}))
	}
	alertAction("renew", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.RenewRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.Renew(ctx, u, at, req)
	})
	alertAction("ack", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.AckRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.Ack(ctx, u, at, req)
	})
	alertAction("fail", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.FailRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.Fail(ctx, u, at, req)
	})
	alertAction("requeue", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.RequeueRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.Requeue(ctx, u, at, req)
	})
	alertAction("to-incident", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.ToIncidentRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.ToIncident(ctx, u, at, req)
	})
	s.incidentRoutes(m)
}

// incidentRoutes serve the incident actions: note, close and state.
func (s *Queue) incidentRoutes(m base.Mux) {
	incidentAction := func(name string, f func(context.Context, *base.User, base.Ref, []byte) (any, error)) {
		m.Handle("POST /v1/incidents/{namespace}/{name}/"+name, base.Action(s.Auth, func(ctx context.Context, u *base.User, r *http.Request) (any, error) {
			body, err := base.ReadAll(r)
			if err != nil {
				return nil, err
			}
			return f(ctx, u, base.PathRef(r), body)
		}))
	}
	incidentAction("note", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.IncidentNoteRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.NoteIncident(ctx, u, at, req)
	})
	incidentAction("close", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.IncidentCloseRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.CloseIncident(ctx, u, at, req)
	})
	incidentAction("state", func(ctx context.Context, u *base.User, at base.Ref, body []byte) (any, error) {
		var req base.IncidentStateRequest
		if err := base.DecodeJSON(body, &req); err != nil {
			return nil, err
		}
		return s.SetIncidentState(ctx, u, at, req)
	})
}
