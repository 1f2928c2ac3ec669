package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/incident"
)

// Problem is the answer of a refused work-queue action: the usual error body,
// the field errors of an invalid request (400), and the holder and lease
// expiry of an Alert someone else holds (409).
type Problem struct {
	ErrorBody
	// Errors name each invalid field (400).
	Errors []FieldError `json:"errors,omitempty"`
	// Holder holds the Alert's lease (409, not the holder).
	Holder *Holder `json:"holder,omitempty"`
	// LeaseExpiresAt is when that lease ends, or ended (409).
	LeaseExpiresAt *time.Time `json:"leaseExpiresAt,omitempty"`
}

// Holder names a lease holder as the API server's refusals do.
type Holder struct {
	User  string `json:"user"`
	Owner string `json:"owner"`
}

// problem is an action's refusal; HTTP, the tool endpoint and MCP each tell
// it in their own way, with the same words.
type problem struct {
	Problem
	// retryAfter, when set, is sent as the Retry-After header (503).
	retryAfter time.Duration
}

func (p *problem) Error() string { return p.Message }

// text is the refusal as one line an agent can act on (MCP tool results).
func (p *problem) text() string {
	msg := p.Message
	if p.Code == http.StatusConflict && p.Holder != nil && p.LeaseExpiresAt != nil && p.LeaseExpiresAt.After(time.Now()) {
		msg += "; retry after " + p.LeaseExpiresAt.UTC().Format(time.RFC3339)
	}
	if p.Code == http.StatusServiceUnavailable {
		msg += "; retry in a few seconds"
	}
	return fmt.Sprintf("%d %s: %s", p.Code, p.Reason, msg)
}

func newProblem(code int, msg string) *problem {
	return &problem{Problem: Problem{ErrorBody: ErrorBody{Code: code, Reason: http.StatusText(code), Message: msg}}}
}

// invalid is a 400 naming every field error.
func invalid(errs field.ErrorList) *problem {
	p := newProblem(http.StatusBadRequest, errs.ToAggregate().Error())
	p.Errors = fieldErrors(errs)
	return p
}

func fieldErrors(errs field.ErrorList) []FieldError {
	out := make([]FieldError, 0, len(errs))
	for _, e := range errs {
		out = append(out, FieldError{Field: e.Field, Type: string(e.Type), Detail: e.ErrorBody()})
	}
	return out
}

// forbidden is the 403 of a SubjectAccessReview that said no, in the words
// the API server uses for kubectl.
func forbidden(u *User, a access) *problem {
	what := a.resource
	if a.name != "" {
		what += fmt.Sprintf(" %q", a.name)
	}
	where := " in the namespace " + fmt.Sprintf("%q", a.ns)
	if a.ns == "" {
		where = " at the cluster scope"
	}
	return newProblem(http.StatusForbidden, fmt.Sprintf("%s.%s%s is forbidden: User %q cannot %s resource %q in API group %q%s",
		strings.Split(a.resource, "/")[0], v1.GroupVersion.Group, nameSuffix(a.name), u.Username, a.verb, a.resource, v1.GroupVersion.Group, where))
}

func nameSuffix(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" %q", name)
}

// unavailableProblem is a 503: the cluster could not be reached, or the
// object kept changing under every retry (no work queue here to retry it later).
func unavailableProblem(msg string) *problem {
	p := newProblem(http.StatusServiceUnavailable, msg)
	p.retryAfter = time.Second
	return p
}

// toProblem maps what an action returned onto the error contract, as the
// CLI maps it onto exit codes: not the holder 409 (CLI 3), forbidden 403
// (7), not found 404 (6), invalid 400 (1), unreachable or still conflicting
// after the retries 503 (5).
func toProblem(ctx context.Context, err error) *problem {
	var p *problem
	var nh *alertstate.NotHolderError
	var pe *alertstate.PhaseError
	var status apierrors.APIStatus
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &nh):
		p = newProblem(http.StatusConflict, nh.Error())
		if nh.Holder != (alertstate.Caller{}) {
			p.Holder = &Holder{User: nh.Holder.User, Owner: nh.Holder.Owner}
		}
		if !nh.Until.IsZero() {
			t := nh.Until.UTC()
			p.LeaseExpiresAt = &t
		}
		return p
	case errors.As(err, &pe):
		return newProblem(http.StatusConflict, pe.Error())
	case errors.Is(err, incident.ErrAlreadyClosed), errors.Is(err, incident.ErrSameState):
		return newProblem(http.StatusConflict, err.Error())
	case apierrors.IsNotFound(err):
		return newProblem(http.StatusNotFound, err.Error())
	case apierrors.IsForbidden(err):
		code := http.StatusForbidden
		if strings.Contains(err.Error(), "only the holder may") {
			code = http.StatusConflict
		}
		return newProblem(code, err.Error())
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		p = newProblem(http.StatusBadRequest, err.Error())
		if errors.As(err, &status) && status.Status().Details != nil {
			for _, c := range status.Status().Details.Causes {
				p.Errors = append(p.Errors, FieldError{Field: c.Field, Type: string(c.Type), Detail: c.Message})
			}
		}
		if p.Errors == nil {
			p.Errors = []FieldError{}
		}
		return p
	case apierrors.IsConflict(err):
		return unavailableProblem(err.Error() + ": it kept changing while the request retried")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return unavailableProblem("the cluster did not answer in time: " + err.Error())
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), errors.As(err, &status):
		return unavailableProblem("the cluster cannot do this now: " + err.Error())
	}
	ctrl.LoggerFrom(ctx).Error(err, "A work-queue action failed")
	return unavailableProblem("the cluster could not be reached: " + err.Error())
}

// writeProblem answers with p.
func writeProblem(w http.ResponseWriter, p *problem) {
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(p.retryAfter.Seconds())))
	}
	WriteJSON(w, p.Code, p.Problem)
}
