package intake

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/metrics"
)

// Counter counts occurrences: an Intake of this process, or a Router that
// sends them to the replica that counts for all.
type Counter interface {
	Ingest(ctx context.Context, req Request) (Result, error)
	Resolve(ctx context.Context, namespace string, spec v1.AlertSpec, caller, key, by string, at time.Time) (Result, error)
}

var (
	_ Counter = (*Intake)(nil)
	_ Counter = (*Router)(nil)
)

// ErrUnconfirmed says an occurrence was sent to the replica that counts it
// and no answer came back: it may or may not have been counted. A sender
// that retries with the same Idempotency-Key counts it once.
var ErrUnconfirmed = errors.New("the replica that counts this fingerprint did not answer")

// PeerPath is where a replica takes the occurrences its peers send it.
const PeerPath = "/intake/v1/occurrences"

// ResolvePath is where a replica takes the ends of firing instances its
// peers send it.
const ResolvePath = "/intake/v1/resolutions"

// resolution is the end of a firing instance, as Counter.Resolve takes it.
type resolution struct {
	Namespace string       `json:"namespace"`
	Spec      v1.AlertSpec `json:"spec"`
	Caller    string       `json:"caller"`
	Key       string       `json:"key"`
	By        string       `json:"by"`
	At        time.Time    `json:"at"`
}

// Router sends every occurrence to the replica that owns the writes (the
// holder of the intake Lease, see Elector), so that one process group-
// commits each fingerprint: with two replicas each counting what the
// Service happens to send it, both write the same canonical Alert, split
// every batch in two and conflict on a good part of their writes.
//
// Ownership is a matter of speed, not of correctness: every count is a
// write under the resourceVersion it read, so two replicas counting at once
// (while a new owner takes over, or when the owner cannot be reached and a
// replica counts what it holds itself) conflict and retry, never double or
// lose an occurrence.
type Router struct {
	// Local counts here: what this replica owns, what it is sent, and what
	// it cannot send.
	Local *Intake
	// Owner is the peer address of the replica that counts, and whether
	// that is this one; "" while nobody is known to.
	Owner func() (addr string, self bool)
	// Peers reaches the owner (mutual TLS, see PeerTLS).
	Peers *http.Client
}

// Ingest counts req where its fingerprint is owned, and returns once it is
// durable there.
func (r *Router) Ingest(ctx context.Context, req Request) (Result, error) {
	addr, self := r.Owner()
	if self || addr == "" {
		return r.Local.Ingest(ctx, req)
	}
	res, sent, err := r.forward(ctx, addr, PeerPath, req)
	if !sent && ctx.Err() != nil {
		return Result{}, ctx.Err() // the sender is gone: nothing was counted
	}
	if !sent {
		// Nothing reached the owner (it is gone, or restarting): counting
		// here is as exact, only slower while two replicas write.
		metrics.IntakeForwarded.WithLabelValues("local").Inc()
		ctrl.LoggerFrom(ctx).V(1).Info("Counting locally: the intake's owner cannot be reached", "owner", addr, "error", err.Error())
		return r.Local.Ingest(ctx, req)
	}
	if errors.Is(err, ErrUnconfirmed) {
		metrics.IntakeForwarded.WithLabelValues("unconfirmed").Inc()
		return Result{}, err
	}
	metrics.IntakeForwarded.WithLabelValues("counted").Inc()
	return res, err
}

// Resolve ends a firing instance where its fingerprint is owned, so that
// the firing instances, like the counts, have one writer.
func (r *Router) Resolve(ctx context.Context, namespace string, spec v1.AlertSpec, caller, key, by string, at time.Time) (Result, error) {
	addr, self := r.Owner()
	if self || addr == "" {
		return r.Local.Resolve(ctx, namespace, spec, caller, key, by, at)
	}
	res, sent, err := r.forward(ctx, addr, ResolvePath, resolution{Namespace: namespace, Spec: spec, Caller: caller, Key: key, By: by, At: at})
	if !sent && ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if !sent || errors.Is(err, ErrUnconfirmed) {
		// Unlike a count, a resolution may be made twice: an ended
		// instance stays ended, and the second finds nothing to write.
		metrics.IntakeResolutionsForwarded.WithLabelValues("local").Inc()
		ctrl.LoggerFrom(ctx).V(1).Info("Resolving locally: the intake's owner did not take it", "owner", addr, "error", fmt.Sprint(err))
		return r.Local.Resolve(ctx, namespace, spec, caller, key, by, at)
	}
	metrics.IntakeResolutionsForwarded.WithLabelValues("resolved").Inc()
	return res, err
}

// peerAnswer is the owner's answer to one forwarded occurrence.
type peerAnswer struct {
	Result Result     `json:"result"`
	Error  *peerError `json:"error,omitempty"`
}

// peerError carries an error across, so that the replica the sender talks
// to answers exactly as the owner would have.
type peerError struct {
	// Busy is ErrBusy; Status an API server refusal; otherwise Message.
	Busy    bool           `json:"busy,omitempty"`
	Status  *metav1.Status `json:"status,omitempty"`
	Message string         `json:"message,omitempty"`
}

func encodeError(err error) *peerError {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrBusy) {
		return &peerError{Busy: true}
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		return &peerError{Status: &s}
	}
	return &peerError{Message: err.Error()}
}

func (e *peerError) err() error {
	switch {
	case e == nil:
		return nil
	case e.Busy:
		return ErrBusy
	case e.Status != nil:
		return &apierrors.StatusError{ErrStatus: *e.Status}
	}
	return errors.New(e.Message)
}

// forward sends payload to path on the owner at addr; sent says whether
// the request reached it (when not, nothing was done there).
func (r *Router) forward(ctx context.Context, addr, path string, payload any) (Result, bool, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return Result{}, false, err
	}
	wrote := false
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) { wrote = i.Err == nil }}
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return Result{}, false, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := r.Peers.Do(hreq)
	if err != nil {
		if !wrote {
			return Result{}, false, err
		}
		return Result{}, true, fmt.Errorf("%w: %w", ErrUnconfirmed, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var a peerAnswer
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return Result{}, true, fmt.Errorf("%w: %s: %s", ErrUnconfirmed, resp.Status, bytes.TrimSpace(msg))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPeerBody)).Decode(&a); err != nil {
		return Result{}, true, fmt.Errorf("%w: %w", ErrUnconfirmed, err)
	}
	return a.Result, true, a.Error.err()
}

// maxPeerBody bounds one forwarded occurrence (an Alert spec is far
// smaller: the API server takes objects of at most 1.5 MiB).
const maxPeerBody = 2 << 20

// PeerHandler counts and resolves what peers send: always here, owner or
// not (see Router).
func (r *Router) PeerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PeerPath, func(w http.ResponseWriter, hr *http.Request) {
		var req Request
		if decodePeer(w, hr, &req, "occurrence") {
			res, err := r.Local.Ingest(hr.Context(), req)
			answerPeer(w, res, err)
		}
	})
	mux.HandleFunc("POST "+ResolvePath, func(w http.ResponseWriter, hr *http.Request) {
		var q resolution
		if decodePeer(w, hr, &q, "resolution") {
			res, err := r.Local.Resolve(hr.Context(), q.Namespace, q.Spec, q.Caller, q.Key, q.By, q.At)
			answerPeer(w, res, err)
		}
	})
	return mux
}

// decodePeer reads a peer's request into v, or answers 400 and says false.
func decodePeer(w http.ResponseWriter, hr *http.Request, v any, what string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, hr.Body, maxPeerBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "malformed "+what+": "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func answerPeer(w http.ResponseWriter, res Result, err error) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(peerAnswer{Result: res, Error: encodeError(err)})
}

// Holder is the certificate both ends of a peer connection present: the
// HTTP API's serving certificate, whose key only its replicas can read.
type Holder interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// Holds reports whether a peer's leaf certificate (DER) is ours.
	Holds(leaf []byte) bool
}

var errNotAPeer = errors.New("the peer does not present the HTTP API's certificate")

// PeerTLS returns the server and client TLS configurations of the peer
// port: each end must present the certificate the other serves (current
// or the one before a rotation). Names are not checked: replicas are
// dialled by address, and holding the key is the proof.
func PeerTLS(h Holder) (server, client *tls.Config) {
	// VerifyConnection runs on every handshake, resumed ones included
	// (VerifyPeerCertificate does not).
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 || !h.Holds(cs.PeerCertificates[0].Raw) {
			return errNotAPeer
		}
		return nil
	}
	server = &tls.Config{
		MinVersion:       tls.VersionTLS13,
		GetCertificate:   h.GetCertificate,
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: verify,
		NextProtos:       []string{"h2", "http/1.1"},
	}
	client = &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: h.GetClientCertificate,
		// The chain and names are not what is checked: verify pins the
		// peer to the very certificate this replica serves.
		InsecureSkipVerify: true, //nolint:gosec // G402: verified by VerifyConnection
		VerifyConnection:   verify,
	}
	return server, client
}

// NewPeerClient returns the client that sends occurrences to the owner.
func NewPeerClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsConfig,
		ForceAttemptHTTP2:   true,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// PeerServer serves PeerHandler on its own port, which only the HTTP API's
// replicas reach (mutual TLS; the shipped NetworkPolicy admits only them).
// It is a manager.Runnable on every replica.
type PeerServer struct {
	Listener net.Listener
	TLS      *tls.Config
	Handler  http.Handler
	// ShutdownTimeout bounds how long occurrences in flight may take to be
	// answered on shutdown.
	ShutdownTimeout time.Duration
}

// NeedLeaderElection is false: every replica takes what it is sent.
func (*PeerServer) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then drains.
func (p *PeerServer) Start(ctx context.Context) error {
	srv := &http.Server{
		Handler:           p.Handler,
		TLSConfig:         p.TLS,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(p.Listener, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("the intake's peer port stopped: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), p.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("failed to drain the intake's peer port: %w", err)
	}
	return nil
}
