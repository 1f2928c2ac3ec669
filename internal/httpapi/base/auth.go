package base

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
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

// DefaultAuthCacheTTL is how long a TokenReview or SubjectAccessReview
// answer, yes or no, is reused: a storm of requests from one monitor then
// costs no extra API calls, and a revoked token or binding is honoured
// within this time. It is the default of the API server's own delegated
// authentication and authorisation.
const DefaultAuthCacheTTL = 10 * time.Second

// DefaultAudience is the audience a token must be bound to unless the
// operator is told otherwise (--api-audiences): `kubectl create token NAME
// --audience alertbridge`, or a projected ServiceAccount token with that
// audience.
const DefaultAudience = "alertbridge"

// Guards in front of TokenReview. A token is never refused for not being a
// JWT: EKS, OpenShift and webhook authenticators issue other shapes.
const (
	// MaxTokenBytes bounds a bearer token. ServiceAccount tokens are about
	// 1 KiB, EKS's about 1.5 KiB, OIDC ID tokens carrying many groups a
	// few KiB; 16 KiB is far above all of them, and below the server's
	// 64 KiB header limit, so a caller cannot make the API server parse
	// megabytes per request.
	MaxTokenBytes = 16 << 10
	// FailedReviewBurst reviews of one client's tokens may fail at once
	// (the token refused, or no answer from the API server); after that
	// one more every FailedReviewInterval. Past it the client gets 429 with
	// Retry-After for tokens not reviewed lately (a token accepted within
	// the verdicts' TTL keeps working; after it, it is reviewed again and
	// needs a free unit too), so a flood of made-up tokens costs the API
	// server at most this many TokenReviews.
	FailedReviewBurst    = 10
	FailedReviewInterval = 6 * time.Second
	// maxTokenVerdicts and maxClients bound the guards' memory; the least
	// recently used entries go first.
	maxTokenVerdicts = 32 << 10
	maxClients       = 16 << 10
	// reviewTimeout bounds one review, shared by the requests waiting on
	// it, below the server's write timeout.
	reviewTimeout = 10 * time.Second
)

// MaxReviewedNamespaces bounds the namespaces one request asks the API
// server about on the caller's behalf, one SubjectAccessReview or a few
// each: those of one GET /v1/permissions and the distinct namespaces of one
// Alertmanager message (more are refused before any review), those a claim
// without a namespace considers, and those a read across namespaces covers
// for a caller who may not list cluster-wide (the most recently active
// first; past them, name a namespace). With the cache, a caller's repeated
// requests cost nothing more within DefaultAuthCacheTTL.
const MaxReviewedNamespaces = 20

// reviewRetries is how the library retries a review that failed for want
// of an answer (5xx, reset connections): once, after half a second. Each
// retry is another request to an API server that may already be
// struggling, so not the library's default of five.
var reviewRetries = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 2}

// Authenticator checks bearer tokens with TokenReview and authorises callers
// with SubjectAccessReview against the API server's own RBAC, through
// k8s.io/apiserver's delegating authenticator and authorizer: answers are
// cached (DefaultAuthCacheTTL) and concurrent identical TokenReviews are
// made once. In front of them, guards refuse malformed tokens without a
// review and rate-limit failed reviews per client.
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
	// DefaultAuthCacheTTL, negative turns the caches off.
	CacheTTL time.Duration
	// Clock is injected so tests control the guards' time (the failed-review
	// limits and the guards' memory of tokens); nil means the real clock.
	// The library's own caches keep real time.
	Clock clock.PassiveClock

	once    sync.Once
	initErr error
	tokens  authenticator.Request
	authz   authorizer.Authorizer
	// verdicts remembers, by a hash of the token, whether it passed review.
	verdicts *utilcache.LRUExpireCache
	// clients holds each client's failed-review limiter.
	clientsMu sync.Mutex
	clients   *utilcache.LRUExpireCache
	// takeMu makes a limiter's check and reservation one step.
	takeMu sync.Mutex
	// flights makes concurrent reviews of one token from one client, and
	// identical SubjectAccessReviews, one request.
	flights singleflight.Group
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
		next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

type userKey struct{}

// UserFrom is the caller Require authenticated; nil for an anonymous one.
func UserFrom(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// WithUser is ctx carrying u, as Require hands it to what it wraps.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// Authenticate reviews the request's bearer token. It answers 401/429/503
// itself and returns ok=false when the request must stop; a nil user with
// ok=true is an anonymous caller that allowAnonymous let through.
func (a *Authenticator) Authenticate(w http.ResponseWriter, r *http.Request, allowAnonymous bool) (*User, bool) {
	token, present := bearerToken(r)
	if !present {
		if allowAnonymous {
			return nil, true
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge"`)
		WriteError(w, http.StatusUnauthorized, "a Kubernetes bearer token is required")
		return nil, false
	}
	if why := malformed(token); why != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge", error="invalid_token"`)
		WriteError(w, http.StatusUnauthorized, "the bearer token "+why)
		return nil, false
	}
	u, err := a.review(r.Context(), clientOf(r), token)
	var limited *limitedError
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(limited.retryAfter))
		WriteError(w, http.StatusTooManyRequests, limited.Error())
		return nil, false
	case errors.Is(err, errInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="alertbridge", error="invalid_token"`)
		WriteError(w, http.StatusUnauthorized, "the token is not valid for this API: it must be bound to the audience "+
			strings.Join(a.audiences(), " or ")+" (kubectl create token NAME --audience "+a.audiences()[0]+")")
		return nil, false
	case err != nil:
		ctrl.LoggerFrom(r.Context()).Error(err, "TokenReview failed")
		WriteError(w, http.StatusServiceUnavailable, "cannot check the token now")
		return nil, false
	}
	return u, true
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
// group/resource (named name) in ns: a SubjectAccessReview with u's user,
// UID, groups and extra. A resource "alerts/status" names the status
// subresource of alerts.
func (a *Authenticator) Allowed(ctx context.Context, u *User, verb, group, resource, ns, name string) (bool, error) {
	if err := a.init(); err != nil {
		return false, err
	}
	res, sub, _ := strings.Cut(resource, "/")
	extra := make(map[string][]string, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = v
	}
	attrs := authorizer.AttributesRecord{
		User:      &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra},
		Verb:      verb,
		Namespace: ns, APIGroup: group, Resource: res, Subresource: sub, Name: name,
		ResourceRequest: true,
	}
	// The library caches answers but does not join identical questions
	// asked at once (a burst of a new monitor's first requests).
	shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
	defer cancel()
	v, err, _ := a.flights.Do(accessKey(u, verb, group, resource, ns, name), func() (any, error) {
		d, _, err := a.authz.Authorize(shared, attrs)
		return d == authorizer.DecisionAllow, err
	})
	if err != nil {
		return false, fmt.Errorf("failed to review whether %s may %s %s in %q: %w", u.Username, verb, resource, ns, err)
	}
	return v.(bool), nil
}

// accessKey names one SubjectAccessReview question.
func accessKey(u *User, verb, group, resource, ns, name string) string {
	extra := make([]string, 0, len(u.Extra))
	for k, v := range u.Extra {
		extra = append(extra, k+"="+strings.Join(v, "\x00"))
	}
	slices.Sort(extra)
	return strings.Join([]string{"sar", u.Username, u.UID, strings.Join(u.Groups, "\x00"), strings.Join(extra, "\x00"),
		verb, group, resource, ns, name}, "\x01")
}

// errInvalidToken is a token the API server did not accept for our audiences.
var errInvalidToken = errors.New("the token is not valid for this API")

// limitedError is a client past its failed-review limit.
type limitedError struct {
	client     string
	retryAfter int // seconds
}

func (e *limitedError) Error() string {
	return fmt.Sprintf("too many tokens from %s failed review; retry in %d s (tokens accepted in the last few seconds keep working)", e.client, e.retryAfter)
}

// review answers who token is: from the guards' memory when it failed
// review lately, else from the delegating authenticator, whose cache
// answers tokens reviewed lately. A token not known to be valid costs the
// client one review from its limit unless it passes.
func (a *Authenticator) review(ctx context.Context, client, token string) (*User, error) {
	if err := a.init(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	known, seen := a.verdict(key)
	if seen && !known {
		return nil, errInvalidToken
	}
	if seen {
		return a.authenticate(ctx, key, token)
	}
	// The review is shared by every request of the flight: one caller
	// going away must not fail the others.
	shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
	defer cancel()
	v, err, _ := a.flights.Do("token\x01"+client+"\x01"+key, func() (any, error) {
		now := a.now()
		reservation, retryAfter := a.take(client, now)
		if reservation == nil {
			return nil, &limitedError{client: client, retryAfter: retryAfter}
		}
		u, err := a.authenticate(shared, key, token)
		if err == nil {
			// Only reviews that did not pass count against the client: made-up
			// tokens, and while the API server cannot answer, any new token,
			// so an outage does not turn a flood into a review per request.
			reservation.CancelAt(now)
		}
		return u, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*User), nil
}

// authenticate asks the delegating authenticator and remembers the verdict.
func (a *Authenticator) authenticate(ctx context.Context, key, token string) (*User, error) {
	req, err := http.NewRequestWithContext(authenticator.WithAudiences(ctx, a.audiences()), http.MethodGet, "/", nil)
	if err != nil {
		return nil, err
	}
	// Only the bearer token is handed over: the library would also read a
	// token from a WebSocket subprotocol, past the guards.
	req.Header.Set("Authorization", "Bearer "+token)
	resp, ok, err := a.tokens.AuthenticateRequest(req)
	switch {
	case ok:
		a.remember(key, true)
		return userOf(resp.User), nil
	case unanswered(err):
		return nil, err
	}
	// Not valid, or not for our audiences: the library answers an invalid
	// token without an error (and caches it), or with the error text the
	// API server gave (and does not).
	a.remember(key, false)
	return nil, errInvalidToken
}

// unanswered says err is a review that got no answer (the API server
// unreachable, overloaded, or refusing the operator), not a token that
// failed review.
func unanswered(err error) bool {
	if err == nil {
		return false
	}
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		return slices.ContainsFunc(agg.Errors(), unanswered)
	}
	var status apierrors.APIStatus
	var netErr net.Error
	return errors.As(err, &status) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func userOf(u user.Info) *User {
	out := &User{Username: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups()}
	if extra := u.GetExtra(); len(extra) > 0 {
		out.Extra = make(map[string]authenticationv1.ExtraValue, len(extra))
		for k, v := range extra {
			out.Extra[k] = v
		}
	}
	return out
}

// init builds the delegating authenticator and authorizer on first use, so
// an Authenticator is a plain struct literal.
func (a *Authenticator) init() error {
	a.once.Do(func() {
		ttl := max(a.ttl(), 0)
		a.tokens, _, a.initErr = authenticatorfactory.DelegatingAuthenticatorConfig{
			TokenAccessReviewClient:  a.Client.AuthenticationV1(),
			TokenAccessReviewTimeout: reviewTimeout,
			WebhookRetryBackoff:      &reviewRetries,
			CacheTTL:                 ttl,
			// No implicit audiences: a review whose answer names no audience
			// (an API server that ignores spec.audiences) is refused rather
			// than taken for one of ours.
		}.New()
		if a.initErr != nil {
			a.initErr = fmt.Errorf("failed to build the token authenticator: %w", a.initErr)
			return
		}
		a.authz, a.initErr = authorizerfactory.DelegatingAuthorizerConfig{
			SubjectAccessReviewClient: a.Client.AuthorizationV1(),
			AllowCacheTTL:             ttl,
			DenyCacheTTL:              ttl,
			WebhookRetryBackoff:       &reviewRetries,
		}.New()
		if a.initErr != nil {
			a.initErr = fmt.Errorf("failed to build the authorizer: %w", a.initErr)
			return
		}
		a.verdicts = utilcache.NewLRUExpireCacheWithClock(maxTokenVerdicts, a.clock())
		a.clients = utilcache.NewLRUExpireCacheWithClock(maxClients, a.clock())
	})
	return a.initErr
}

func (a *Authenticator) verdict(key string) (valid, seen bool) {
	v, ok := a.verdicts.Get(key)
	if !ok {
		return false, false
	}
	return v.(bool), true
}

func (a *Authenticator) remember(key string, valid bool) {
	if ttl := a.ttl(); ttl > 0 {
		a.verdicts.Add(key, valid, ttl)
	}
}

// limiter is client's failed-review limiter. It is forgotten once it would
// be full again, which is as good as a new one.
func (a *Authenticator) limiter(client string) *rate.Limiter {
	idle := FailedReviewBurst * FailedReviewInterval
	a.clientsMu.Lock()
	defer a.clientsMu.Unlock()
	if l, ok := a.clients.Get(client); ok {
		a.clients.Add(client, l, idle)
		return l.(*rate.Limiter)
	}
	l := rate.NewLimiter(rate.Every(FailedReviewInterval), FailedReviewBurst)
	a.clients.Add(client, l, idle)
	return l
}

// take reserves one failed review of client's at now, or says in how many
// seconds one is free. It reserves only what is free at once: a
// reservation for later, cancelled as a refused request's is, gives back
// less than it took while other reservations follow it, so concurrent
// refusals pushed a client's wait (and Retry-After) past one interval.
func (a *Authenticator) take(client string, now time.Time) (*rate.Reservation, int) {
	l := a.limiter(client)
	a.takeMu.Lock()
	defer a.takeMu.Unlock()
	if tokens := l.TokensAt(now); tokens < 1 {
		wait := time.Duration((1 - tokens) * float64(FailedReviewInterval))
		return nil, max(1, int((wait+time.Second-1)/time.Second))
	}
	return l.ReserveN(now, 1), 0
}

// clientOf is who a request comes from, for the failed-review limit: its
// remote address, or for IPv6 its /64, which one host usually holds whole.
// Behind a proxy or an Ingress it is the proxy's: forwarded-for headers
// are the caller's word and not trusted.
func clientOf(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}

// malformed says why token cannot be a token at all, or "".
func malformed(token string) string {
	switch {
	case token == "":
		return "is empty"
	case len(token) > MaxTokenBytes:
		return fmt.Sprintf("is %d bytes long, more than the %d a token may be", len(token), MaxTokenBytes)
	}
	for i := range len(token) {
		if c := token[i]; c < 0x21 || c > 0x7e {
			return fmt.Sprintf("has a character that is not printable ASCII at byte %d", i)
		}
	}
	return ""
}

func (a *Authenticator) audiences() []string {
	if len(a.Audiences) == 0 {
		return []string{DefaultAudience}
	}
	return a.Audiences
}

func (a *Authenticator) ttl() time.Duration {
	if a.CacheTTL == 0 {
		return DefaultAuthCacheTTL
	}
	return a.CacheTTL
}

func (a *Authenticator) clock() clock.PassiveClock {
	if a.Clock == nil {
		return clock.RealClock{}
	}
	return a.Clock
}

func (a *Authenticator) now() time.Time { return a.clock().Now() }

// bearerToken is the request's bearer token; present is false when the
// request sends none (no Authorization header, or another scheme).
func bearerToken(r *http.Request) (token string, present bool) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}
