package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alertbridge/alertbridge/internal/clip"
)

// Entry is one request the run sent and the answer it got.
type Entry struct {
	Seq   int64     `json:"seq"`
	At    time.Time `json:"at"`
	Took  string    `json:"took"`
	Actor string    `json:"actor"`
	// Op is ingest, batch, alertmanager, resend, claim, ack, fail,
	// to-incident or gate.
	Op  string `json:"op"`
	URL string `json:"url"`
	Key string `json:"key,omitempty"`
	// IDs are the occurrences the request carries, as the ledger names
	// them (a key, "<key>#<i>" in a batch, an Alertmanager instance's
	// "<fingerprint>@<startsAt>"), so a finding can be traced to them.
	IDs []string `json:"ids,omitempty"`
	// Ref is the Alert (namespace/name) an action acted on.
	Ref     string `json:"ref,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Code is the HTTP status, 0 when no answer came (transport error,
	// timeout).
	Code   int    `json:"code"`
	Err    string `json:"err,omitempty"`
	Answer string `json:"answer,omitempty"`
}

// Journal records every request of a run, in memory and as JSON lines.
type Journal struct {
	mu      sync.Mutex
	seq     int64
	entries []Entry
	out     io.WriteCloser
}

func newJournal(path string) (*Journal, error) {
	f, err := os.Create(path) // #nosec G304 -- the run's own directory
	if err != nil {
		return nil, err
	}
	return &Journal{out: f}, nil
}

// maxAnswer bounds what is kept of an answer's body: enough for a whole
// batch's per-item answers, which a finding needs to be traced.
const maxAnswer = 16 << 10

// Add records e and returns its sequence number.
func (j *Journal) Add(e Entry) int64 {
	if len(e.Answer) > maxAnswer {
		e.Answer = clip.Mark(e.Answer, maxAnswer)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	e.Seq = j.seq
	j.entries = append(j.entries, e)
	if b, err := json.Marshal(e); err == nil {
		_, _ = fmt.Fprintf(j.out, "%s\n", b)
	}
	return e.Seq
}

// Len is how many requests were journalled.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

// Get returns entry seq.
func (j *Journal) Get(seq int64) (Entry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq < 1 || int(seq) > len(j.entries) {
		return Entry{}, false
	}
	return j.entries[seq-1], true
}

// Carrying lists the requests that carried occurrence id, at most n.
func (j *Journal) Carrying(id string, n int) []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []int64
	for _, e := range j.entries {
		if slices.Contains(e.IDs, id) {
			if out = append(out, e.Seq); len(out) == n {
				break
			}
		}
	}
	return out
}

// Count counts entries by op and by whether an answer came.
func (j *Journal) Count() (byOp map[string]int, noAnswer int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	byOp = map[string]int{}
	for _, e := range j.entries {
		byOp[e.Op]++
		if e.Code == 0 {
			noAnswer++
		}
	}
	return byOp, noAnswer
}

// InFlight counts requests to base (a replica's URL) sent before until
// and finished after at.
func (j *Journal) InFlight(base string, at, until time.Time) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, e := range j.entries {
		took, err := time.ParseDuration(e.Took)
		if err == nil && strings.HasPrefix(e.URL, base) && !e.At.After(until) && e.At.Add(took).After(at) {
			n++
		}
	}
	return n
}

func (j *Journal) close() error { return j.out.Close() }
