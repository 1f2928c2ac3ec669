// Package fingerprint is the identity of an alert firing and the fold of
// its occurrences: it computes the fingerprint (purely: the same spec
// yields the same fingerprint in every process, which lets the controller
// route work by fingerprint before any status is written), finds the
// Alerts of a fingerprint in a cache (the index), and decides which of them
// absorbs an occurrence (Canonical).
package fingerprint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultEnv is the env an Alert without one belongs to, as the CRD defaults it.
const DefaultEnv = "prod"

// hexLen is the length of a computed fingerprint: 128 bits, label-safe.
const hexLen = 32

// Compute returns the default fingerprint: a hash of service, env, kind and
// the labels sorted by key. Fields are length-prefixed so no two distinct
// inputs share an encoding.
func Compute(service, env, kind string, labels map[string]string) string {
	if env == "" {
		env = DefaultEnv
	}
	h := sha256.New()
	write(h, "alertbridge.fingerprint.v1")
	write(h, service)
	write(h, env)
	write(h, kind)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		write(h, k)
		write(h, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:hexLen]
}

// Effective returns override when set, else the computed fingerprint.
func Effective(override, service, env, kind string, labels map[string]string) string {
	if override != "" {
		return override
	}
	return Compute(service, env, kind, labels)
}

// LabelValue maps a fingerprint to a value usable in the
// ops.alertbridge.io/fingerprint label: itself when it is a valid label
// value, else a hash of it.
func LabelValue(fp string) string {
	if len(validation.IsValidLabelValue(fp)) == 0 {
		return fp
	}
	return Hash(fp)
}

// Hash returns a label-safe hash of any string (used for signatures too).
func Hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hexLen]
}

func write(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}
