package dashboard

import (
	"context"
	"net/http"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// caller is who sent a read request. A list without a namespace covers the
// namespaces the caller may list, so a request may need several
// SubjectAccessReviews (cluster-wide first, then one per namespace seen, at
// most base.MaxReviewedNamespaces); the base.Authenticator caches their answers.
type caller struct {
	auth *base.Authenticator
	// user is nil for an anonymous caller let in by --dashboard-anonymous.
	user *base.User
}

// authenticate checks the bearer token: 401 without a valid one, unless
// anonymous callers are let in.
func (s *Board) authenticate(w http.ResponseWriter, r *http.Request, anonymous bool) (*caller, bool) {
	u, ok := s.Auth.Authenticate(w, r, anonymous)
	if !ok {
		return nil, false
	}
	return &caller{auth: s.Auth, user: u}, true
}

func (c *caller) anonymous() bool { return c.user == nil }

func (c *caller) name() string {
	if c.user == nil {
		return "system:anonymous"
	}
	return c.user.Username
}

// may reports whether the caller may list resource (of ops.alertbridge.io)
// in namespace ("" = cluster-wide), as RBAC answers a SubjectAccessReview.
func (c *caller) may(ctx context.Context, resource, namespace string) (bool, error) {
	if c.user == nil {
		return true, nil
	}
	return c.auth.Allowed(ctx, c.user, "list", "ops.alertbridge.io", resource, namespace, "")
}

// mayEach reports for the first base.MaxReviewedNamespaces distinct namespaces
// of nss, in order, whether the caller may list resource there; those past
// them are not asked about and are not in the answer.
func (c *caller) mayEach(ctx context.Context, resource string, nss []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, ns := range nss {
		if _, asked := out[ns]; asked {
			continue
		}
		if len(out) == base.MaxReviewedNamespaces {
			break
		}
		ok, err := c.may(ctx, resource, ns)
		if err != nil {
			return nil, err
		}
		out[ns] = ok
	}
	return out, nil
}
