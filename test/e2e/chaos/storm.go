package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/httpapi/ingestapi"
)

// outcome is what the answers say of one occurrence.
type outcome int

const (
	// pending: no answer decided it yet.
	pending outcome = iota
	// notCounted: an answer said it was not counted (429 or the intake's
	// "busy" 503, or a 4xx refusal).
	notCounted
	// unknown: no answer, or one that cannot say (a 5xx other than
	// "busy", a timeout): it may or may not have been counted.
	unknown
	// confirmed: a 2xx answer counted it (or replayed its key).
	confirmed
)

// occurrence is one firing the storm means to have counted once: a keyed
// request item, an unkeyed request, or an Alertmanager firing instance.
type occurrence struct {
	id      string
	service string
	// keyed: sent with a key (an Idempotency-Key, or an Alertmanager
	// instance's), so that a retry of it must count nothing more.
	keyed bool
	state outcome
	// seq is the journal entry that decided state last.
	seq int64
	// confirmedAt is when it was first confirmed (resends go only to
	// occurrences confirmed well inside the key window).
	confirmedAt time.Time
}

// ledger holds every occurrence of the storm.
type ledger struct {
	mu   sync.Mutex
	occs map[string]*occurrence
	// order keeps insertion order for reports.
	order []string
	// refused counts 4xx answers other than 429, by code.
	refused map[int]int
}

func newLedger() *ledger {
	return &ledger{occs: map[string]*occurrence{}, refused: map[int]int{}}
}

func (l *ledger) add(id, service string, keyed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.occs[id]; ok {
		return
	}
	l.occs[id] = &occurrence{id: id, service: service, keyed: keyed}
	l.order = append(l.order, id)
}

// record raises id's state: confirmed wins over unknown, unknown over
// notCounted (an earlier attempt that may have counted stays possible).
func (l *ledger) record(id string, st outcome, seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.occs[id]
	if o == nil || st <= o.state {
		return
	}
	o.state, o.seq = st, seq
	if st == confirmed {
		o.confirmedAt = time.Now()
	}
}

func (l *ledger) refusal(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused[code]++
}

func (l *ledger) state(id string) (outcome, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := l.occs[id]; o != nil {
		return o.state, o.confirmedAt
	}
	return pending, time.Time{}
}

// bounds are, per service, how many occurrences must be counted (lo: the
// confirmed ones) and may be (hi: plus those whose answer was lost), with
// the journal entry of one confirmed and one unknown occurrence.
type bounds struct {
	lo, hi         int64
	lastConfirmed  int64
	lastUnknownSeq int64
}

func (l *ledger) bounds() map[string]*bounds {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]*bounds{}
	for _, id := range l.order {
		o := l.occs[id]
		b := out[o.service]
		if b == nil {
			b = &bounds{}
			out[o.service] = b
		}
		switch o.state {
		case confirmed:
			b.lo++
			b.hi++
			b.lastConfirmed = o.seq
		case unknown, pending:
			b.hi++
			b.lastUnknownSeq = o.seq
		}
	}
	return out
}

// keyedIDs lists the keyed occurrences that may have been counted.
func (l *ledger) keyedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, id := range l.order {
		if o := l.occs[id]; o.keyed && o.state != notCounted {
			out = append(out, id)
		}
	}
	return out
}

func (l *ledger) totals() (all, conf, unk int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.occs {
		all++
		switch o.state {
		case confirmed:
			conf++
		case unknown, pending:
			unk++
		}
	}
	return all, conf, unk
}

// The storm's client behaviour: a request times out after requestTimeout;
// a keyed request is retried (on another replica, as a Service would pick
// one) with a growing backoff for at most retryBudget, well inside the
// key window (alertstate.KeyWindow, 5 minutes).
const (
	requestTimeout = 15 * time.Second
	retryBudget    = 90 * time.Second
	maxBackoff     = 3 * time.Second
	// resendAge bounds the age of a confirmed request the storm sends
	// again with its key (a client that lost the 200 and retried late).
	resendAge = 2 * time.Minute
)

// sender is one monitor or Alertmanager: its own connections and token.
type sender struct {
	run   *runner
	name  string
	hc    *http.Client
	token string
	rng   *rand.Rand
	n     int
}

// post sends one request and journals it.
func (s *sender) post(ctx context.Context, op, url, key string, body []byte, ids []string, attempt int) (int, []byte, int64) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	start := time.Now()
	e := Entry{At: start, Actor: s.name, Op: op, URL: url, Key: key, IDs: ids, Attempt: attempt}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		e.Err = err.Error()
		return 0, nil, s.run.journal.Add(e)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(base.IdempotencyKeyHeader, key)
	}
	resp, err := s.hc.Do(req)
	var data []byte
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if err == nil {
			e.Code = resp.StatusCode
		}
	}
	e.Took = time.Since(start).Round(time.Millisecond).String()
	if err != nil {
		e.Err = err.Error()
		data = nil
	}
	e.Answer = string(data)
	return e.Code, data, s.run.journal.Add(e)
}

// itemOutcome classifies an item of an answer: err is the item's error
// message ("" when counted) and code the HTTP status the item called for.
func itemOutcome(code int, errMsg string) outcome {
	switch {
	case code == 0:
		return unknown
	case code >= 200 && code < 300 && errMsg == "":
		return confirmed
	case code == http.StatusTooManyRequests, strings.Contains(errMsg, "retry later"):
		return notCounted // intake.ErrBusy: answered before anything was written
	case code >= 400 && code < 500:
		return notCounted
	}
	return unknown
}

// deliver sends body until every item is decided (confirmed or not
// counted), retrying keyed requests; ids are the items' occurrences.
func (s *sender) deliver(ctx context.Context, op, path, key string, body []byte, ids []string, batch bool) {
	urls := s.run.env.APIURLs()
	first := s.rng.IntN(len(urls))
	deadline := time.Now().Add(retryBudget)
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		url := urls[(first+attempt-1)%len(urls)] + path
		code, data, seq := s.post(ctx, op, url, key, body, ids, attempt)
		settled := s.classify(code, data, ids, seq, batch)
		if settled || (key == "" && op != "alertmanager") || ctx.Err() != nil || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// classify records each item's outcome and says whether all are decided.
func (s *sender) classify(code int, data []byte, ids []string, seq int64, batch bool) bool {
	l := s.run.ledger
	if code >= 400 && code < 500 && code != http.StatusTooManyRequests {
		l.refusal(code)
	}
	outcomes := make([]outcome, len(ids))
	switch {
	case !batch:
		var eb base.ErrorBody
		_ = json.Unmarshal(data, &eb)
		outcomes[0] = itemOutcome(code, eb.Message)
	default:
		// Batches answer per item, 200 or a 5xx when any item failed.
		var items []string
		var br ingestapi.BatchResult
		var ar ingestapi.AlertmanagerResponse
		if json.Unmarshal(data, &br) == nil && len(br.Results) == len(ids) {
			for _, r := range br.Results {
				items = append(items, r.Error)
			}
		} else if json.Unmarshal(data, &ar) == nil && len(ar.Results) == len(ids) {
			for _, r := range ar.Results {
				items = append(items, r.Error)
			}
		}
		for i := range outcomes {
			switch {
			case items == nil && code >= 400 && code < 500:
				outcomes[i] = itemOutcome(code, "")
			case items == nil:
				outcomes[i] = unknown
			case items[i] == "":
				outcomes[i] = confirmed
			default:
				outcomes[i] = itemOutcome(http.StatusServiceUnavailable, items[i])
			}
		}
	}
	settled := true
	for i, id := range ids {
		l.record(id, outcomes[i], seq)
		if st, _ := l.state(id); st != confirmed && outcomes[i] != notCounted {
			settled = false
		}
	}
	return settled
}

// stormService names the fingerprints: each has a service of its own, so
// the oracle can sum an Alert's occurrences by service.
func stormService(prefix string, i int) string { return fmt.Sprintf("%s-%02d", prefix, i) }

func ingestBody(service string) map[string]any {
	return map[string]any{"service": service, "kind": "latency", "title": "p95 above 300ms", "labels": map[string]string{"region": "eu"}}
}

// sentRequest is a confirmed keyed request a sender may send again.
type sentRequest struct {
	op, path, key string
	body          []byte
	ids           []string
	batch         bool
	at            time.Time
}

// monitor sends HTTP ingest requests: keyed singles, keyed batches with
// duplicate fingerprints inside, unkeyed singles, and late resends of
// confirmed keyed requests.
func (s *sender) monitor(ctx context.Context) {
	cfg := s.run.cfg
	path := "/v1/alerts?namespace=" + s.run.ns
	var sent []sentRequest
	for ctx.Err() == nil {
		s.n++
		p := s.rng.IntN(100)
		switch {
		case p < 55:
			svc := stormService("web", s.rng.IntN(cfg.Fingerprints))
			key := fmt.Sprintf("%s-%d", s.name, s.n)
			body, _ := json.Marshal(ingestBody(svc))
			s.run.ledger.add(key, svc, true)
			s.deliver(ctx, "ingest", path, key, body, []string{key}, false)
			sent = append(sent, sentRequest{"resend", path, key, body, []string{key}, false, time.Now()})
		case p < 75:
			n := 2 + s.rng.IntN(5)
			key := fmt.Sprintf("%s-%d", s.name, s.n)
			alerts := make([]any, n)
			ids := make([]string, n)
			for i := range n {
				// Fingerprints repeat inside a batch: duplicates of one
				// request count once each, keyed "<key>#<i>".
				svc := stormService("web", s.rng.IntN(min(cfg.Fingerprints, 4)))
				alerts[i] = ingestBody(svc)
				ids[i] = key + "#" + strconv.Itoa(i)
				s.run.ledger.add(ids[i], svc, true)
			}
			body, _ := json.Marshal(map[string]any{"alerts": alerts})
			s.deliver(ctx, "batch", path, key, body, ids, true)
			sent = append(sent, sentRequest{"resend", path, key, body, ids, true, time.Now()})
		case p < 85:
			svc := stormService("web", s.rng.IntN(cfg.Fingerprints))
			id := fmt.Sprintf("%s-%d-nokey", s.name, s.n)
			body, _ := json.Marshal(ingestBody(svc))
			s.run.ledger.add(id, svc, false)
			s.deliver(ctx, "ingest", path, "", body, []string{id}, false)
		default:
			// A client that lost a 200 sends the same request again with
			// its key: it must count nothing more.
			for len(sent) > 0 && time.Since(sent[0].at) > resendAge {
				sent = sent[1:]
			}
			if len(sent) == 0 {
				continue
			}
			r := sent[s.rng.IntN(len(sent))]
			if st, at := s.run.ledger.state(r.ids[0]); st != confirmed || time.Since(at) > resendAge {
				continue
			}
			s.deliver(ctx, r.op, r.path, r.key, r.body, r.ids, r.batch)
		}
		s.pause(ctx)
	}
}

func (s *sender) pause(ctx context.Context) {
	d := s.run.cfg.Pause/2 + time.Duration(s.rng.Int64N(int64(s.run.cfg.Pause)))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// amInstance is one firing instance an Alertmanager keeps sending until
// it retires it.
type amInstance struct {
	id, service, fingerprint, instance string
	startsAt                           time.Time
	born                               time.Time
}

// alertmanager sends webhook batches as Alertmanager does: every firing
// instance of a group again and again (each counted once, keyed by its
// fingerprint and startsAt), new instances joining, old ones retired well
// inside the key window; a 5xx batch is sent again whole.
func (s *sender) alertmanager(ctx context.Context) {
	cfg := s.run.cfg
	path := "/v1/alertmanager?namespace=" + s.run.ns
	var active []*amInstance
	for ctx.Err() == nil {
		s.n++
		for len(active) > 0 && time.Since(active[0].born) > resendAge {
			active = active[1:]
		}
		for k := s.rng.IntN(3); k > 0 || len(active) == 0; k-- {
			svc := stormService("am", s.rng.IntN(cfg.Fingerprints))
			inst := fmt.Sprintf("%s-%d-%d", s.name, s.n, k)
			a := &amInstance{service: svc, instance: inst, fingerprint: fmt.Sprintf("%016x", s.rng.Uint64()),
				startsAt: time.Now().UTC().Truncate(time.Millisecond), born: time.Now()}
			a.id = a.fingerprint + "@" + a.startsAt.Format(time.RFC3339Nano)
			s.run.ledger.add(a.id, svc, true)
			active = append(active, a)
		}
		if len(active) > 8 {
			active = active[len(active)-8:]
		}
		alerts := make([]any, len(active))
		ids := make([]string, len(active))
		for i, a := range active {
			ids[i] = a.id
			alerts[i] = map[string]any{
				"status":       "firing",
				"labels":       map[string]string{"alertname": "HighLatency", "service": a.service, "instance": a.instance, "severity": "warning"},
				"annotations":  map[string]string{"summary": "p95 above 300ms"},
				"startsAt":     a.startsAt,
				"endsAt":       time.Time{},
				"generatorURL": "http://prometheus/graph",
				"fingerprint":  a.fingerprint,
			}
		}
		body, _ := json.Marshal(map[string]any{
			"version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
			"status": "firing", "receiver": "alertbridge", "groupLabels": map[string]string{"alertname": "HighLatency"},
			"commonLabels": map[string]string{"alertname": "HighLatency"}, "commonAnnotations": map[string]string{},
			"externalURL": "http://alertmanager:9093", "alerts": alerts,
		})
		s.deliver(ctx, "alertmanager", path, "", body, ids, true)
		s.pause(ctx)
	}
}
