// Package bench holds the benchmarks that need a control plane (and
// PostgreSQL); `make bench` runs them, the test suite does not.
package bench

import (
	"os"
	"testing"
)

// cleanups stop what the benchmarks started, once all have run.
var cleanups []func()

func atExit(f func()) { cleanups = append(cleanups, f) }

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}
