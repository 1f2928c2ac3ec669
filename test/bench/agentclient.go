package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// AgentClient calls the work-queue endpoints as one agent: what the
// benchmarks drive the API with (this package's, against the shipped
// binary, and internal/httpapi's).
type AgentClient struct {
	// BaseURL is the API's, e.g. https://alertbridge.alertbridge-system.svc:8090.
	BaseURL string
	// Token is a bearer token bound to the audience alertbridge.
	Token string
	// HTTP sends the requests (its transport trusts the API's CA); nil is
	// http.DefaultClient.
	HTTP *http.Client
}

// Claim is POST /v1/alerts/claim.
func (c *AgentClient) Claim(ctx context.Context, r base.ClaimRequest) (*base.ClaimResult, error) {
	var out base.ClaimResult
	return &out, c.post(ctx, "/v1/alerts/claim", r, &out)
}

// Renew is POST /v1/alerts/{alertRef}/renew.
func (c *AgentClient) Renew(ctx context.Context, alertRef string, r base.RenewRequest) (*base.WorkAlert, error) {
	var out base.WorkAlert
	return &out, c.post(ctx, "/v1/alerts/"+alertRef+"/renew", r, &out)
}

// Ack is POST /v1/alerts/{alertRef}/ack.
func (c *AgentClient) Ack(ctx context.Context, alertRef string, r base.AckRequest) (*base.WorkAlert, error) {
	var out base.WorkAlert
	return &out, c.post(ctx, "/v1/alerts/"+alertRef+"/ack", r, &out)
}

// Fail is POST /v1/alerts/{alertRef}/fail.
func (c *AgentClient) Fail(ctx context.Context, alertRef string, r base.FailRequest) (*base.WorkAlert, error) {
	var out base.WorkAlert
	return &out, c.post(ctx, "/v1/alerts/"+alertRef+"/fail", r, &out)
}

// AgentError is a refusal of the API: its status and body.
type AgentError struct {
	Status int
	base.Problem
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

func (c *AgentClient) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		e := &AgentError{Status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(&e.Problem)
		return e
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
