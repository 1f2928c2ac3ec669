// Package outbound holds the rules of the operator's HTTP calls to endpoints
// users configure (an SLOPolicy's Prometheus source, a triage webhook):
// credentials and configured headers reach only the configured origin, so a
// redirect to another origin is refused rather than followed; and what
// users read about a failed call (status, conditions, Events) is in our
// words with the HTTP status code, never text the remote side chose.
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
)

// MaxRedirects bounds the same-origin redirects one call follows.
const MaxRedirects = 5

// Origin is u's scheme://host:port, the port made explicit, so
// http://prom and http://prom:80 are one origin and http://prom:9090,
// https://prom and http://other are three others.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// RedirectError is a redirect to another origin, refused.
type RedirectError struct {
	// From is the configured origin; To is where the redirect pointed,
	// which the remote side chose and so is not part of the message.
	From, To string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("refused a redirect from %s to another origin: credentials and headers go only to the configured URL's origin; "+
		"configure the URL the redirect points to instead", e.From)
}

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// CheckRedirect, as an http.Client's CheckRedirect, follows a redirect only
// within the origin of the first request (keeping its headers, credentials
// included) and refuses any other.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if from, to := Origin(via[0].URL), Origin(req.URL); from != to {
		return &RedirectError{From: from, To: to}
	}
	if len(via) > MaxRedirects {
		return errTooManyRedirects
	}
	return nil
}

// Client is a copy of hc that follows only same-origin redirects.
func Client(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = CheckRedirect
	return &c
}

// StatusError is an answer with a status other than the call expects.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("answered HTTP %d (%s)", e.Code, http.StatusText(e.Code))
}

// Error is a failed call described in our words. Its cause stays
// reachable for errors.Is and errors.As, but is never part of the text.
type Error struct {
	msg   string
	cause error
}

func (e *Error) Error() string { return e.msg }

func (e *Error) Unwrap() error { return e.cause }

// Wrap describes err, a failed call that got no usable HTTP answer, in our
// words (see Describe); nil stays nil.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	return &Error{msg: Describe(err), cause: err}
}

// Describe says why a call got no usable HTTP answer without repeating
// anything the remote side sent: a malformed answer's bytes, a redirect's
// Location, a certificate's names. Only the host name of a failed DNS
// lookup is repeated, which is the configured one.
func Describe(err error) string {
	var (
		redirect *RedirectError
		dns      *net.DNSError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		netErr   net.Error
		opErr    *net.OpError
	)
	switch {
	case errors.As(err, &redirect):
		return redirect.Error()
	case errors.Is(err, errTooManyRedirects):
		return errTooManyRedirects.Error()
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "no answer in time"
	case errors.As(err, &dns):
		return "cannot resolve the host name " + dns.Name
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &unknown):
		return "the server's TLS certificate is not signed by a trusted authority (put the CA in the Secret's ca.crt)"
	case errors.As(err, &hostname):
		return "the server's TLS certificate is not valid for the URL's host"
	case errors.As(err, &invalid):
		return "the server's TLS certificate is not valid (expired or not for serving)"
	case errors.As(err, &record):
		return "the server does not speak TLS (is the URL's scheme right?)"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed before a complete answer"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "cannot connect"
	}
	return "no valid HTTP answer"
}
