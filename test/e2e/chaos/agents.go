package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// Agent behaviour: leases short enough to expire during the run, retries
// soon due.
const (
	agentLease      = "20s"
	agentRetryAfter = "3s"
	agentBatch      = 4
)

// claimRecord is one claim answered 200: the lease this agent got.
type claimRecord struct {
	uid, ref, owner string
	attempts        int32
	acquired        time.Time
	expires         time.Time
	seq             int64
	// released is when this agent sent an ack or fail for it (zero: it
	// let the lease expire).
	released time.Time
}

// actionRecord is an ack or fail answered 200.
type actionRecord struct {
	uid, ref, owner, op string
	// claimed is the attempts of the agent's own lease; answered is the
	// attempts of the Alert the answer shows.
	claimed, answered int32
	seq               int64
}

// conversion is a to-incident answered 200 that linked the Alert.
type conversion struct {
	alert, incident string
	seq             int64
}

// claimLog holds the work queue's answers.
type claimLog struct {
	mu          sync.Mutex
	claims      []*claimRecord
	actions     []actionRecord
	conversions []conversion
	lostClaims  int
}

func (c *claimLog) addClaim(r *claimRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claims = append(c.claims, r)
}

func (c *claimLog) release(r *claimRecord, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.released.IsZero() {
		r.released = at
	}
}

func (c *claimLog) addAction(a actionRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.actions = append(c.actions, a)
}

func (c *claimLog) addConversion(v conversion) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conversions = append(c.conversions, v)
}

func (c *claimLog) lostClaim() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lostClaims++
}

// agent claims, acks, fails, converts and abandons Alerts over the HTTP
// API, as a Go agent would.
type agent struct {
	run     *runner
	name    string
	hc      *http.Client
	token   string
	oncall  string
	rng     *rand.Rand
	replica int
}

// call sends one request to one replica and journals it; a transport
// error or 5xx moves the agent to the other replica (a Service's next
// pick). out receives a 200's body.
func (a *agent) call(ctx context.Context, op, ref, method, path, token string, body, out any) (int, int64) {
	urls := a.run.env.APIURLs()
	url := urls[a.replica%len(urls)] + path
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	start := time.Now()
	e := Entry{At: start, Actor: a.name, Op: op, URL: url, Ref: ref}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(rctx, method, url, rd)
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		var resp *http.Response
		if resp, err = a.hc.Do(req); err == nil {
			var data []byte
			data, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			if err == nil {
				e.Code, e.Answer = resp.StatusCode, string(data)
				if resp.StatusCode == http.StatusOK && out != nil {
					err = json.Unmarshal(data, out)
				}
			}
		}
	}
	e.Took = time.Since(start).Round(time.Millisecond).String()
	if err != nil {
		e.Err = err.Error()
		if e.Code == http.StatusOK {
			e.Code = 0 // an answer that cannot be read says nothing
		}
	}
	if e.Code == 0 || e.Code >= 500 {
		a.replica++
	}
	return e.Code, a.run.journal.Add(e)
}

func (a *agent) loop(ctx context.Context) {
	for ctx.Err() == nil {
		var res base.ClaimResult
		code, seq := a.call(ctx, "claim", "", http.MethodPost, "/v1/alerts/claim", a.token,
			base.ClaimRequest{Namespace: a.run.ns, Limit: agentBatch, Owner: a.name, LockTTL: agentLease}, &res)
		if code == 0 || code >= 500 {
			// The claim may have taken Alerts nobody will hear of: their
			// leases expire and the operator hands them back.
			a.run.claims.lostClaim()
		}
		var held []*claimRecord
		if code == http.StatusOK {
			for _, w := range res.Alerts {
				r := &claimRecord{uid: w.UID, ref: w.AlertRef, owner: a.name, attempts: w.Attempts, seq: seq}
				if w.Lease != nil {
					r.acquired, r.expires = w.Lease.AcquiredAt, w.Lease.ExpiresAt
				}
				a.run.claims.addClaim(r)
				held = append(held, r)
			}
		}
		for _, r := range held {
			if ctx.Err() != nil {
				return
			}
			a.work(ctx, r)
		}
		d := 200 * time.Millisecond
		if len(held) == 0 {
			d = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(d + time.Duration(a.rng.Int64N(int64(300*time.Millisecond)))):
		}
	}
}

// work decides one claimed Alert: ack (most), fail for a retry, ack and
// then convert into an Incident (as on-call: while the agent holds the
// Alert, nobody else may link it), or walk away and let the lease expire.
func (a *agent) work(ctx context.Context, r *claimRecord) {
	p := a.rng.IntN(100)
	if p < 8 {
		return // abandoned: the lease expires, the operator hands it back
	}
	op := "ack"
	if p >= 80 {
		op = "fail"
	}
	sent := time.Now()
	var body any = base.AckRequest{Owner: a.name, Note: "chaos: handled"}
	if op == "fail" {
		body = base.FailRequest{Owner: a.name, Error: "chaos: handler failed", RetryAfter: agentRetryAfter}
	}
	var w base.WorkAlert
	code, seq := a.call(ctx, op, r.ref, http.MethodPost, "/v1/alerts/"+r.ref+"/"+op, a.token, body, &w)
	if code == http.StatusOK || code == 0 || code >= 500 {
		// Sent: it may have released the lease even without an answer.
		a.run.claims.release(r, sent)
	}
	if code == http.StatusOK {
		a.run.claims.addAction(actionRecord{uid: r.uid, ref: r.ref, owner: a.name, op: op, claimed: r.attempts, answered: w.Attempts, seq: seq})
		if p < 20 {
			a.convert(ctx, r)
		}
	}
}

func (a *agent) convert(ctx context.Context, r *claimRecord) {
	var res base.ToIncidentResult
	code, seq := a.call(ctx, "to-incident", r.ref, http.MethodPost, "/v1/alerts/"+r.ref+"/to-incident", a.oncall, base.ToIncidentRequest{}, &res)
	if code == http.StatusOK && (res.Created || res.Appended) {
		a.run.claims.addConversion(conversion{alert: r.ref, incident: res.Incident.IncidentRef, seq: seq})
	}
}

// gate reads the SLOPolicy's release gate as on-call (a deploy
// pipeline's identity would need get on slopolicies too).
func (a *agent) gate(ctx context.Context, policy string) {
	for ctx.Err() == nil {
		var g base.Gate
		code, seq := a.call(ctx, "gate", policy, http.MethodGet, "/v1/gates/"+a.run.ns+"/"+policy, a.oncall, nil, &g)
		if code == http.StatusOK {
			a.run.gates.add(g, seq)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// gateLog keeps the gate's answers.
type gateLog struct {
	mu      sync.Mutex
	answers []gateAnswer
}

type gateAnswer struct {
	gate base.Gate
	seq  int64
}

func (g *gateLog) add(v base.Gate, seq int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.answers = append(g.answers, gateAnswer{v, seq})
}

func (a *agent) String() string { return fmt.Sprintf("agent %s", a.name) }
