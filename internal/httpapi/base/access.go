package base

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Need is one SubjectAccessReview an action needs: Verb on Resource
// ("alerts/status" for the subresource) of ops.alertbridge.io.
type Need struct{ Verb, Resource, Namespace, Name string }

// NeedOf is the Need to verb resource (named name) in ns.
func NeedOf(verb, resource, ns, name string) Need {
	return Need{Verb: verb, Resource: resource, Namespace: ns, Name: name}
}

// Check checks every need for u: a 403 naming the verb and resource for
// the first refused, a 503 when access cannot be checked.
func (a *Authenticator) Check(ctx context.Context, u *User, needs ...Need) error {
	for _, n := range needs {
		ok, err := a.Allowed(ctx, u, n.Verb, v1.GroupVersion.Group, n.Resource, n.Namespace, n.Name)
		if err != nil {
			return Unavailable("cannot check access now: " + err.Error())
		}
		if !ok {
			return Forbidden(u, n)
		}
	}
	return nil
}

// May reports whether u may do every need.
func (a *Authenticator) May(ctx context.Context, u *User, needs ...Need) (bool, error) {
	err := a.Check(ctx, u, needs...)
	var p *Refusal
	if errors.As(err, &p) && p.Code == http.StatusForbidden {
		return false, nil
	}
	return err == nil, err
}

// Ref is the namespace and name of the object an action works on.
type Ref struct{ Namespace, Name string }

// PathRef is the Ref the request's path names ({namespace} and {name}).
func PathRef(r *http.Request) Ref {
	return Ref{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
}

// Key is r as a client.ObjectKey.
func (r Ref) Key() client.ObjectKey { return client.ObjectKey{Namespace: r.Namespace, Name: r.Name} }
func (r Ref) String() string        { return r.Namespace + "/" + r.Name }

// Validate names what is wrong with r, under base.
func (r Ref) Validate(base *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, DNSLabel(base.Child("namespace"), r.Namespace, true)...)
	if r.Name == "" {
		return append(errs, field.Required(base.Child("name"), ""))
	}
	for _, msg := range validation.IsDNS1123Subdomain(r.Name) {
		errs = append(errs, field.Invalid(base.Child("name"), r.Name, msg))
	}
	return errs
}

// DNSLabel checks that v is a DNS label (a namespace name); empty is an
// error only when required.
func DNSLabel(p *field.Path, v string, required bool) field.ErrorList {
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

// Duration parses a Go duration within [lo, hi]; empty is zero.
func Duration(p *field.Path, v string, lo, hi time.Duration) (time.Duration, *field.Error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, field.Invalid(p, v, fmt.Sprintf("must be a duration such as 10m, from %s to %s", lo, hi))
	}
	return d, nil
}

// TooLong refuses v longer than n bytes.
func TooLong(p *field.Path, v string, n int) field.ErrorList {
	if len(v) > n {
		return field.ErrorList{field.TooLong(p, "", n)}
	}
	return nil
}
