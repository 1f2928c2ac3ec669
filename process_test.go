package main

import (
	"runtime/debug"
	"testing"

	"github.com/go-logr/logr"
)

// The runtime's soft limit is 90% of the container's limit, unless
// GOMEMLIMIT says otherwise or the limit is not a number of bytes.
func TestMemoryLimitFromTheContainer(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, tc := range []struct {
		env  map[string]string
		want int64
	}{
		{map[string]string{"MEMORY_LIMIT": "201326592"}, 181193932},
		{map[string]string{"MEMORY_LIMIT": "201326592", "GOMEMLIMIT": "100MiB"}, before},
		{map[string]string{"MEMORY_LIMIT": "192Mi"}, before},
		{map[string]string{}, before},
	} {
		debug.SetMemoryLimit(before)
		setMemoryLimit(logr.Discard(), func(k string) string { return tc.env[k] })
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("%v: limit %d, want %d", tc.env, got, tc.want)
		}
	}
}
