// Command go-agent is a runnable agent loop against alertbridge's HTTP API:
// claim up to 25 Alerts, work each, then ack it, or fail it for a retry.
// It uses only the standard library, so it can be copied anywhere.
//
//	ALERTBRIDGE_URL=https://alertbridge.alertbridge-system.svc:8090 \
//	ALERTBRIDGE_TOKEN=$(kubectl create token supervisor -n ops --audience alertbridge) \
//	ALERTBRIDGE_CA=ca.crt ALERTBRIDGE_NAMESPACE=ops go run ./examples/agents/go-agent
//
// Environment: ALERTBRIDGE_URL (required), ALERTBRIDGE_TOKEN (required),
// ALERTBRIDGE_CA (PEM file of the API's CA; default: the system's roots),
// ALERTBRIDGE_NAMESPACE (default: every namespace the token may claim in),
// ALERTBRIDGE_OWNER (default: go-agent), ALERTBRIDGE_ONCE=1 (stop when
// nothing is left to claim instead of polling).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"
)

// alert is the part of the work-queue answer this loop reads.
type alert struct {
	AlertRef string `json:"alertRef"`
	Service  string `json:"service"`
	Kind     string `json:"kind"`
	Title    string `json:"title"`
}

type claimResult struct {
	Alerts         []alert `json:"alerts"`
	NothingToClaim bool    `json:"nothingToClaim"`
}

type agent struct {
	base, token, owner, namespace string
	http                          *http.Client
}

func main() {
	a, err := fromEnv()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err = a.run(ctx, os.Getenv("ALERTBRIDGE_ONCE") == "1")
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func fromEnv() (*agent, error) {
	a := &agent{
		base: strings.TrimRight(os.Getenv("ALERTBRIDGE_URL"), "/"), token: os.Getenv("ALERTBRIDGE_TOKEN"),
		owner: os.Getenv("ALERTBRIDGE_OWNER"), namespace: os.Getenv("ALERTBRIDGE_NAMESPACE"),
	}
	if a.base == "" || a.token == "" {
		return nil, errors.New("ALERTBRIDGE_URL and ALERTBRIDGE_TOKEN are required")
	}
	if a.owner == "" {
		a.owner = "go-agent"
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := os.Getenv("ALERTBRIDGE_CA"); ca != "" {
		pem, err := os.ReadFile(ca) //nolint:gosec // G304: the CA file is the user's own setting
		if err != nil {
			return nil, err
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", ca)
		}
	}
	a.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	return a, nil
}

// run claims and works batches until ctx ends (or, once, until nothing is
// left to claim).
func (a *agent) run(ctx context.Context, once bool) error {
	for {
		var got claimResult
		err := a.post(ctx, "/v1/alerts/claim", map[string]any{
			"namespace": a.namespace, "limit": 25, "owner": a.owner, "lockTTL": "10m", "windowMinutes": 240,
		}, &got)
		if err != nil {
			return err
		}
		if got.NothingToClaim {
			if once {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Second):
			}
			continue
		}
		for _, al := range got.Alerts {
			path := "/v1/alerts/" + al.AlertRef
			if werr := work(ctx, al); werr != nil {
				err = a.post(ctx, path+"/fail", map[string]any{"owner": a.owner, "error": werr.Error(), "retryAfter": "5m"}, nil)
			} else {
				err = a.post(ctx, path+"/ack", map[string]any{"owner": a.owner, "note": "handled by " + a.owner}, nil)
			}
			if err != nil {
				// 409: the lease ran out and someone else holds it now;
				// leave it to them. Anything else stops the loop.
				var he *httpError
				if errors.As(err, &he) && he.code == http.StatusConflict {
					log.Printf("%s: %s", al.AlertRef, he.msg)
					continue
				}
				return err
			}
		}
	}
}

// work is where an agent does its job; this one fails what it cannot
// handle so that it comes back after retryAfter.
func work(_ context.Context, al alert) error {
	if strings.Contains(al.Title, "unhandled") {
		return fmt.Errorf("no remediation known for %s/%s", al.Service, al.Kind)
	}
	log.Printf("handled %s (%s)", al.AlertRef, al.Title)
	return nil
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

// post sends body as JSON with the bearer token and decodes the answer into
// out; an answer that is not 200 is an *httpError with the API's message.
func (a *agent) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return &httpError{code: resp.StatusCode, msg: e.Message}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
