package httpapi

import (
	"context"
	"crypto/sha256"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
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

// The HTTP API authenticates each caller's bearer token (TokenReview).
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// The HTTP API asks whether the caller may do what they ask
// (SubjectAccessReview), as kubectl would need it, before acting.
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// DefaultAuthCacheTTL is how long a TokenReview or SubjectAccessReview answer
// is reused: a storm of requests from one monitor then costs no extra API
// calls, and a revoked token or binding is honoured within this time (the
// kube-apiserver's own webhook authenticator caches for minutes).
const DefaultAuthCacheTTL = 10 * time.Second

// maxAuthCacheEntries bounds each cache; when full, expired entries go and,
// if none expired, the whole cache is dropped (it refills within one TTL).
const maxAuthCacheEntries = 4096

// DefaultAudience is the audience a token must be bound to unless the
// operator is told otherwise (--api-audiences): `kubectl create token NAME
// --audience alertbridge`, or a projected ServiceAccount token with that
// audience.
const DefaultAudience = "alertbridge"

// Authenticator checks bearer tokens with TokenReview and authorises them
// with SubjectAccessReview against the API server's own RBAC.
//
// Tokens must be bound to one of Audiences. A token made for the API
// server (its default audience) is refused, so a token sent to alertbridge
// cannot be replayed against the API server, and alertbridge never holds a
// token that works there.
type Authenticator struct {
	Client kubernetes.Interface
	// Audiences a token may be bound to; empty means DefaultAudience.
	Audiences []string
	// CacheTTL is how long answers are reused: zero means
	// DefaultAuthCacheTTL, negative turns the cache off.
	CacheTTL time.Duration
	// Clock is injected so tests control time; nil means the real clock.
	Clock clock.PassiveClock

	mu     sync.Mutex
	tokens map[[sha256.Size]byte]tokenEntry
	access map[accessKey]accessEntry
}

type tokenEntry struct {
	status  authenticationv1.TokenReviewStatus
	expires time.Time
}

type accessKey struct {
	user, uid, groups, extra        string
	ns, verb, group, resource, name string
}

type accessEntry struct {
	allowed bool
	expires time.Time
}

// User is an authenticated caller.
type User = authenticationv1.UserInfo

// Require wraps next so only callers allowed access reach it: 401 without
// a valid token, 403 without the RBAC verb, both with a JSON body.
func (a *Authenticator) Require(access Access, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := a.Authenticate(w, r, access.AllowAnonymous)
		if !ok {
			return
		}
		if u == nil {
			next.ServeHTTP(w, r)
			return
		}
		if !a.Authorize(w, r, u, access.Verb, access.Group, access.Resource, access.Namespace(r), access.Name(r)) {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

type userKey struct{}

// UserFrom is the caller Require authenticated; nil for an anonymous one.
func UserFrom(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// Authenticate reviews the request's bearer token. It answers 401/503 itself
// and returns ok=false when the request must stop; a nil user with ok=true
// is an anonymous caller that allowAnonymous let through.
func (a *Authenticator) Authenticate(w http.ResponseWriter, r *http.Request, allowAnonymous bool) (*User, bool) {
	token, ok := bearerToken(r)
	if !ok {
		if allowAnonymous {
			return nil, true
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge"`)
		WriteError(w, http.StatusUnauthorized, "a Kubernetes bearer token is required")
		return nil, false
	}
	st, err := a.reviewToken(r.Context(), token)
	if err != nil {
		ctrl.LoggerFrom(r.Context()).Error(err, "TokenReview failed")
		WriteError(w, http.StatusServiceUnavailable, "cannot check the token now")
		return nil, false
	}
	if !st.Authenticated || !a.boundToUs(st.Audiences) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge", error="invalid_token"`)
		WriteError(w, http.StatusUnauthorized, "the token is not valid for this API: it must be bound to the audience "+
			strings.Join(a.audiences(), " or ")+" (kubectl create token NAME --audience "+a.audiences()[0]+")")
		return nil, false
	}
	u := st.User
	return &u, true
}

// Authorize checks that u may verb group/resource (named name) in ns. It
// answers 403/503 itself and returns false when the request must stop.
func (a *Authenticator) Authorize(w http.ResponseWriter, r *http.Request, u *User, verb, group, resource, ns, name string) bool {
	allowed, err := a.Allowed(r.Context(), u, verb, group, resource, ns, name)
	if err != nil {
		ctrl.LoggerFrom(r.Context()).Error(err, "SubjectAccessReview failed")
		WriteError(w, http.StatusServiceUnavailable, "cannot check access now")
		return false
	}
	if !allowed {
		WriteError(w, http.StatusForbidden, "user "+u.Username+" cannot "+verb+" "+resource+" in namespace "+ns)
		return false
	}
	return true
}

// Allowed asks the API server (or the cache) whether u may verb
// group/resource (named name) in ns. A resource "alerts/status" names the
// status subresource of alerts.
func (a *Authenticator) Allowed(ctx context.Context, u *User, verb, group, resource, ns, name string) (bool, error) {
	extraKeys := make([]string, 0, len(u.Extra))
	for k, v := range u.Extra {
		extraKeys = append(extraKeys, k+"="+strings.Join(v, "\x00"))
	}
	slices.Sort(extraKeys)
	key := accessKey{
		user: u.Username, uid: u.UID, groups: strings.Join(u.Groups, "\x00"), extra: strings.Join(extraKeys, "\x01"),
		ns: ns, verb: verb, group: group, resource: resource, name: name,
	}
	now := a.now()
	if a.ttl() > 0 {
		a.mu.Lock()
		e, ok := a.access[key]
		a.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.allowed, nil
		}
	}
	res, sub, _ := strings.Cut(resource, "/")
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: group, Resource: res, Subresource: sub, Name: name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	if a.ttl() > 0 {
		a.mu.Lock()
		if a.access == nil || len(a.access) >= maxAuthCacheEntries {
			a.access = pruned(a.access, now, func(e accessEntry) time.Time { return e.expires })
		}
		a.access[key] = accessEntry{allowed: sar.Status.Allowed, expires: now.Add(a.ttl())}
		a.mu.Unlock()
	}
	return sar.Status.Allowed, nil
}

// reviewToken asks the API server (or the cache) who token is. Only a hash
// of the token is kept.
func (a *Authenticator) reviewToken(ctx context.Context, token string) (authenticationv1.TokenReviewStatus, error) {
	key := sha256.Sum256([]byte(token))
	now := a.now()
	if a.ttl() > 0 {
		a.mu.Lock()
		e, ok := a.tokens[key]
		a.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.status, nil
		}
	}
	tr, err := a.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: a.audiences()},
	}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.TokenReviewStatus{}, err
	}
	if a.ttl() > 0 {
		a.mu.Lock()
		if a.tokens == nil || len(a.tokens) >= maxAuthCacheEntries {
			a.tokens = pruned(a.tokens, now, func(e tokenEntry) time.Time { return e.expires })
		}
		a.tokens[key] = tokenEntry{status: tr.Status, expires: now.Add(a.ttl())}
		a.mu.Unlock()
	}
	return tr.Status, nil
}

// pruned drops the expired entries of m, or all of them if none expired, so
// the cache never grows beyond maxAuthCacheEntries.
func pruned[K comparable, V any](m map[K]V, now time.Time, expires func(V) time.Time) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	for k, v := range m {
		if !now.Before(expires(v)) {
			delete(m, k)
		}
	}
	if len(m) >= maxAuthCacheEntries {
		return map[K]V{}
	}
	return m
}

func (a *Authenticator) audiences() []string {
	if len(a.Audiences) == 0 {
		return []string{DefaultAudience}
	}
	return a.Audiences
}

// boundToUs says whether the audiences TokenReview found the token valid
// for include one of ours. An API server that ignores spec.audiences
// answers none (the token is then one of its own audience), so this check,
// not only the request, is what refuses such tokens.
func (a *Authenticator) boundToUs(got []string) bool {
	return slices.ContainsFunc(got, func(aud string) bool { return slices.Contains(a.audiences(), aud) })
}

func (a *Authenticator) ttl() time.Duration {
	if a.CacheTTL == 0 {
		return DefaultAuthCacheTTL
	}
	return a.CacheTTL
}

func (a *Authenticator) now() time.Time {
	if a.Clock == nil {
		return time.Now()
	}
	return a.Clock.Now()
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}
