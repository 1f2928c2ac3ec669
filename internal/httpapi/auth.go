package httpapi

import (
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Access is the RBAC check a route needs: the caller must be allowed verb
// on group/resource (named Name) in Namespace, as kubectl would be.
type Access struct {
	Group, Resource, Verb string
	Namespace             func(*http.Request) string
	Name                  func(*http.Request) string
	// AllowAnonymous lets requests without a token through; a request with
	// a token is still checked.
	AllowAnonymous bool
}

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Authenticator checks bearer tokens with TokenReview and authorises them
// with SubjectAccessReview against the API server's own RBAC.
type Authenticator struct {
	Client kubernetes.Interface
}

// Require wraps next so only callers allowed access reach it: 401 without
// a valid token, 403 without the RBAC verb, both with a JSON body.
func (a *Authenticator) Require(access Access, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			if access.AllowAnonymous {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge"`)
			WriteError(w, http.StatusUnauthorized, "a Kubernetes bearer token is required")
			return
		}
		ctx := r.Context()
		tr, err := a.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token},
		}, metav1.CreateOptions{})
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "TokenReview failed")
			WriteError(w, http.StatusServiceUnavailable, "cannot check the token now")
			return
		}
		if !tr.Status.Authenticated {
			w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge", error="invalid_token"`)
			WriteError(w, http.StatusUnauthorized, "the token is not valid")
			return
		}
		u := tr.Status.User
		ns, name := access.Namespace(r), access.Name(r)
		extra := map[string]authorizationv1.ExtraValue{}
		for k, v := range u.Extra {
			extra[k] = authorizationv1.ExtraValue(v)
		}
		sar, err := a.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: ns, Verb: access.Verb, Group: access.Group, Resource: access.Resource, Name: name,
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "SubjectAccessReview failed")
			WriteError(w, http.StatusServiceUnavailable, "cannot check access now")
			return
		}
		if !sar.Status.Allowed {
			WriteError(w, http.StatusForbidden, "user "+u.Username+" cannot "+access.Verb+" "+access.Resource+" in namespace "+ns)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}
