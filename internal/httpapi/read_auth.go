package httpapi

import (
	"context"
	"net/http"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// caller is who sent a read request. A list without a namespace covers the
// namespaces the caller may list, so a request may need several
// SubjectAccessReviews (cluster-wide first, then one per namespace seen);
// the answers are kept for the request.
type caller struct {
	client kubernetes.Interface
	// user is nil for an anonymous caller let in by --dashboard-anonymous.
	user    *authenticationv1.UserInfo
	mu      sync.Mutex
	answers map[[2]string]bool
}

// authenticate checks the bearer token with a TokenReview: 401 without a
// valid one, unless anonymous callers are let in.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, anonymous bool) (*caller, bool) {
	token, ok := bearerToken(r)
	if !ok {
		if anonymous {
			return &caller{}, true
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge"`)
		WriteError(w, http.StatusUnauthorized, "a Kubernetes bearer token is required")
		return nil, false
	}
	tr, err := s.auth.Client.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		unavailable(w, r, err, "cannot check the token now")
		return nil, false
	}
	if !tr.Status.Authenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge", error="invalid_token"`)
		WriteError(w, http.StatusUnauthorized, "the token is not valid")
		return nil, false
	}
	return &caller{client: s.auth.Client, user: &tr.Status.User, answers: map[[2]string]bool{}}, true
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
	key := [2]string{resource, namespace}
	c.mu.Lock()
	ans, ok := c.answers[key]
	c.mu.Unlock()
	if ok {
		return ans, nil
	}
	u := c.user
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := c.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: "list", Group: "ops.alertbridge.io", Resource: resource,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	c.answers[key] = sar.Status.Allowed
	c.mu.Unlock()
	return sar.Status.Allowed, nil
}
