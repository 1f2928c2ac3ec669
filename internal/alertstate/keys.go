package alertstate

import (
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Idempotency keys counted into an Alert live in status.ingestKeys for
// KeyWindow after they were counted, so a retried request (or a re-sent
// Alertmanager firing) within that window counts once, across restarts and
// replicas. The list holds one entry per minute, "<unix minute>:" followed
// by that minute's keys, each KeyLen hex characters: about 16 bytes a key,
// so MaxKeys keys stay far below etcd's object limit. When MaxKeys keys of
// the window are stored, AddKeys takes no more: the intake answers such
// requests "retry later" rather than forget a key it promised to remember.
const (
	KeyWindow = 5 * time.Minute
	MaxKeys   = 8192
	KeyLen    = 16
)

type keyBucket struct {
	minute int64
	keys   []string
}

func keyBuckets(s *v1.AlertStatus) []keyBucket {
	out := make([]keyBucket, 0, len(s.IngestKeys))
	for _, e := range s.IngestKeys {
		m, packed, ok := strings.Cut(e, ":")
		minute, err := strconv.ParseInt(m, 10, 64)
		if !ok || err != nil || len(packed)%KeyLen != 0 {
			continue // an entry of an older format: its keys were hashed differently anyway
		}
		b := keyBucket{minute: minute, keys: make([]string, 0, len(packed)/KeyLen)}
		for i := 0; i < len(packed); i += KeyLen {
			b.keys = append(b.keys, packed[i:i+KeyLen])
		}
		out = append(out, b)
	}
	return out
}

func kept(buckets []keyBucket, key string) bool {
	return slices.ContainsFunc(buckets, func(b keyBucket) bool { return slices.Contains(b.keys, key) })
}

// HasKey reports whether key was counted into the Alert and is still kept.
func HasKey(s *v1.AlertStatus, key string) bool {
	return len(key) == KeyLen && kept(keyBuckets(s), key)
}

// CanonicalName is the Alert that counts a's occurrences: a itself, or the
// canonical a was folded into.
func CanonicalName(a *v1.Alert) string {
	if a.Status.DuplicateOf != "" {
		return a.Status.DuplicateOf
	}
	return a.Name
}

// HeldKeys lists the keys HoldsKey reports for a, each once.
func HeldKeys(a *v1.Alert) []string {
	var out []string
	if k := a.Annotations[v1.IngestKeyAnnotation]; k != "" {
		out = append(out, k)
	}
	for _, b := range keyBuckets(&a.Status) {
		out = append(out, b.keys...)
	}
	if a.Status.Firing != nil {
		out = append(out, a.Status.Firing.Instances...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// HoldsKey reports whether a counted the occurrence key names already: a
// created it (the ingest-key annotation), it was counted into a within
// KeyWindow, or it is one of a's firing instances. The intake answers such
// a request as a replay; the controller folds an Alert created for it
// without counting it again.
func HoldsKey(a *v1.Alert, key string) bool {
	return key != "" && (HasKey(&a.Status, key) || a.Annotations[v1.IngestKeyAnnotation] == key ||
		(a.Status.Firing != nil && slices.Contains(a.Status.Firing.Instances, key)))
}

// AddKeys records keys counted at now, after dropping the minutes older
// than KeyWindow. It adds keys in order until MaxKeys are kept and returns
// how many of them it took (a key already kept counts as taken).
func AddKeys(s *v1.AlertStatus, now time.Time, keys ...string) int {
	return addKeys(s, now, false, keys)
}

// ForceAddKeys records keys like AddKeys but, past MaxKeys, forgets the
// oldest keys instead of refusing: for the controller, which folds
// occurrences that were acknowledged already and cannot refuse them.
func ForceAddKeys(s *v1.AlertStatus, now time.Time, keys ...string) {
	addKeys(s, now, true, keys)
}

func addKeys(s *v1.AlertStatus, now time.Time, evict bool, keys []string) int {
	minute := now.Unix() / 60
	oldest := minute - int64(KeyWindow/time.Minute)
	var buckets []keyBucket
	seen := map[string]bool{}
	for _, b := range keyBuckets(s) {
		if b.minute >= oldest {
			buckets = append(buckets, b)
			for _, k := range b.keys {
				seen[k] = true
			}
		}
	}
	total := len(seen)
	if len(buckets) == 0 || buckets[len(buckets)-1].minute < minute {
		buckets = append(buckets, keyBucket{minute: minute})
	}
	cur := len(buckets) - 1
	taken := 0
	for _, k := range keys {
		if len(k) != KeyLen || seen[k] {
			taken++ // remembered already, or not a key this log can hold
			continue
		}
		if total >= MaxKeys {
			if !evict {
				break
			}
			for i := range buckets { // forget the oldest kept key
				if len(buckets[i].keys) > 0 {
					delete(seen, buckets[i].keys[0])
					buckets[i].keys = buckets[i].keys[1:]
					total--
					break
				}
			}
		}
		buckets[cur].keys = append(buckets[cur].keys, k)
		seen[k] = true
		total++
		taken++
	}
	s.IngestKeys = nil
	for _, b := range buckets {
		if len(b.keys) > 0 {
			s.IngestKeys = append(s.IngestKeys, strconv.FormatInt(b.minute, 10)+":"+strings.Join(b.keys, ""))
		}
	}
	return taken
}
