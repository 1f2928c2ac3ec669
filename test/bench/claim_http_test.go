package bench

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/test/e2e/shipped"
)

// claimAckHTTP drains Alerts with 8 agents over the HTTP work queue, as an
// agent without Kubernetes credentials does: POST /v1/alerts/claim with a
// batch, then POST /v1/alerts/{ref}/ack per Alert it got, through
// AgentClient over TLS with a token of the audience alertbridge.
// Agent i talks to replica i mod 2, as a Service would spread their
// connections. The operator makes the writes, after reviewing the token
// and the agent's access (both cached as shipped).
func (r *run) claimAckHTTP() {
	ns := r.namespace("http-claims-")
	n := r.size.Claims
	r.createNew(ns, n)
	urls := r.env.APIURLs()
	agents := make([]*AgentClient, r.size.Claimers)
	for i := range agents {
		u := r.user(ns, fmt.Sprintf("agent-%d", i), "alertbridge-agent")
		tok, err := u.APIToken(r.ctx)
		r.check(err)
		hc, err := r.env.APIClient(r.ctx)
		r.check(err)
		agents[i] = &AgentClient{BaseURL: urls[i%len(urls)], Token: tok, HTTP: hc}
	}
	var retried atomic.Int64
	r.profile(2*time.Second, "claim5e")
	elapsed, cost := r.drainLoops(n, len(agents), "the HTTP agents", func(i int) (int, error) {
		owner := fmt.Sprintf("agent-%d", i)
		got, err := r.claimHTTP(agents[i], base.ClaimRequest{Namespace: ns, Limit: r.size.Batch, Owner: owner}, &retried)
		if err != nil {
			return 0, err
		}
		if got.NothingToClaim {
			return 0, errDrained
		}
		for _, a := range got.Alerts {
			if _, err := agents[i].Ack(r.ctx, a.AlertRef, base.AckRequest{Owner: owner, Note: "handled"}); err != nil {
				return 0, fmt.Errorf("ack of %s: %w", a.AlertRef, err)
			}
		}
		return len(got.Alerts), nil
	})
	rate := float64(n) / elapsed.Seconds()
	result := fmt.Sprintf("%.0f Alerts/s", rate)
	if k := retried.Load(); k > 0 {
		result += fmt.Sprintf(", %d claims retried after a 503", k)
	}
	r.rep.addVs("5e", fmt.Sprintf("claim+ack, %d agents over the HTTP work queue: POST /v1/alerts/claim (batches of %d), then /v1/alerts/{ref}/ack per Alert (AgentClient, TLS, both replicas)", r.size.Claimers, r.size.Batch),
		result, comparison{value: rate, base: "1b", label: "of 1b", min: 0.8, metric: "http-claimack/ceiling2"})
	r.rep.path(fmt.Sprintf("claim+ack over HTTP, %d agents (per Alert, conflicts included; the operator writes)", r.size.Claimers), cost)
}

// claimHTTP claims, retrying a 503: the API answers it when the batch's
// writes kept conflicting with other claimers and it took nothing, and an
// agent tries again.
func (r *run) claimHTTP(ag *AgentClient, req base.ClaimRequest, retried *atomic.Int64) (*base.ClaimResult, error) {
	backoff := shipped.RetryBackoff
	for {
		got, err := ag.Claim(r.ctx, req)
		var ae *AgentError
		if err == nil || backoff.Steps <= 1 || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			return got, err
		}
		retried.Add(1)
		time.Sleep(backoff.Step()) // an agent's backoff
	}
}
