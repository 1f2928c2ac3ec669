package base

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

// FieldError is one problem with a request, named by its JSON path.
type FieldError struct {
	Field  string `json:"field"`
	Type   string `json:"type"`
	Detail string `json:"detail,omitempty"`
}

// Refusal is an action's refusal; HTTP, the tool endpoint and MCP each tell
// it in their own way, with the same words.
type Refusal struct {
	Problem
	// RetryAfter, when set, is sent as the Retry-After header (503).
	RetryAfter time.Duration
}

func (p *Refusal) Error() string { return p.Message }

// Text is the refusal as one line an agent can act on (MCP tool results).
func (p *Refusal) Text() string {
	msg := p.Message
	if p.Code == http.StatusConflict && p.Holder != nil && p.LeaseExpiresAt != nil && p.LeaseExpiresAt.After(time.Now()) {
		msg += "; retry after " + p.LeaseExpiresAt.UTC().Format(time.RFC3339)
	}
	if p.Code == http.StatusServiceUnavailable {
		msg += "; retry in a few seconds"
	}
	return fmt.Sprintf("%d %s: %s", p.Code, p.Reason, msg)
}

// Refuse is a refusal with code and msg.
func Refuse(code int, msg string) *Refusal {
	return &Refusal{Problem: Problem{ErrorBody: ErrorBody{Code: code, Reason: http.StatusText(code), Message: msg}}}
}

// Invalid is a 400 naming every field error.
func Invalid(errs field.ErrorList) *Refusal {
	p := Refuse(http.StatusBadRequest, errs.ToAggregate().Error())
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

// Forbidden is the 403 of a SubjectAccessReview that said no, in the words
// the API server uses for kubectl.
func Forbidden(u *User, a Need) *Refusal {
	what := a.Resource
	if a.Name != "" {
		what += fmt.Sprintf(" %q", a.Name)
	}
	where := " in the namespace " + fmt.Sprintf("%q", a.Namespace)
	if a.Namespace == "" {
		where = " at the cluster scope"
	}
	return Refuse(http.StatusForbidden, fmt.Sprintf("%s.%s%s is forbidden: User %q cannot %s resource %q in API group %q%s",
		strings.Split(a.Resource, "/")[0], v1.GroupVersion.Group, nameSuffix(a.Name), u.Username, a.Verb, a.Resource, v1.GroupVersion.Group, where))
}

func nameSuffix(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" %q", name)
}

// Unavailable is a 503: the cluster could not be reached, or the
// object kept changing under every retry (no work queue here to retry it later).
func Unavailable(msg string) *Refusal {
	p := Refuse(http.StatusServiceUnavailable, msg)
	p.RetryAfter = time.Second
	return p
}

// RefusalOf maps what an action returned onto the error contract, as the
// CLI maps it onto exit codes: not the holder 409 (CLI 3), forbidden 403
// (7), not found 404 (6), invalid 400 (1), unreachable or still conflicting
// after the retries 503 (5).
func RefusalOf(ctx context.Context, err error) *Refusal {
	var p *Refusal
	var nh *alertstate.NotHolderError
	var pe *alertstate.PhaseError
	var status apierrors.APIStatus
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &nh):
		p = Refuse(http.StatusConflict, nh.Error())
		if nh.Holder != (alertstate.Caller{}) {
			p.Holder = &Holder{User: nh.Holder.User, Owner: nh.Holder.Owner}
		}
		if !nh.Until.IsZero() {
			t := nh.Until.UTC()
			p.LeaseExpiresAt = &t
		}
		return p
	case errors.As(err, &pe):
		return Refuse(http.StatusConflict, pe.Error())
	case errors.Is(err, incident.ErrAlreadyClosed), errors.Is(err, incident.ErrSameState):
		return Refuse(http.StatusConflict, err.Error())
	case apierrors.IsNotFound(err):
		return Refuse(http.StatusNotFound, err.Error())
	case apierrors.IsForbidden(err):
		code := http.StatusForbidden
		if strings.Contains(err.Error(), "only the holder may") {
			code = http.StatusConflict
		}
		return Refuse(code, err.Error())
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		p = Refuse(http.StatusBadRequest, err.Error())
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
		return Unavailable(err.Error() + ": it kept changing while the request retried")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Unavailable("the cluster did not answer in time: " + err.Error())
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), errors.As(err, &status):
		return Unavailable("the cluster cannot do this now: " + err.Error())
	}
	ctrl.LoggerFrom(ctx).Error(err, "A work-queue action failed")
	return Unavailable("the cluster could not be reached: " + err.Error())
}

// WriteRefusal answers with p.
func WriteRefusal(w http.ResponseWriter, p *Refusal) {
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(p.RetryAfter.Seconds())))
	}
	WriteJSON(w, p.Code, p.Problem)
}
