package chaos

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestScheduleIsSeeded(t *testing.T) {
	for _, d := range []time.Duration{time.Minute, 90 * time.Second, 5 * time.Minute, 10 * time.Minute} {
		a, b := Schedule(3, d), Schedule(3, d)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: one seed gave two schedules:\n%v\n%v", d, a, b)
		}
		if reflect.DeepEqual(a, Schedule(4, d)) {
			t.Errorf("%s: seeds 3 and 4 gave the same schedule", d)
		}
		first := []FaultKind{a[0].Kind, a[1].Kind}
		if !slices.Contains(first, KillLeader) || !slices.Contains(first, PGOutage) {
			t.Errorf("%s: the leader's kill and a PostgreSQL outage come first, got %v", d, first)
		}
		for i, f := range a {
			if f.At >= d {
				t.Errorf("%s: fault %d (%s) is after the storm", d, i, f)
			}
			if i > 0 && f.At <= a[i-1].At+a[i-1].For {
				t.Errorf("%s: fault %d (%s) starts before fault %d ends", d, i, f, i-1)
			}
		}
		long := slices.ContainsFunc(a, func(f Fault) bool { return f.Kind == PGOutage && f.For == time.Minute })
		if long != (d >= 5*time.Minute) {
			t.Errorf("%s: a 60 s PostgreSQL outage: %t", d, long)
		}
	}
	if got := kinds(Schedule(1, 90*time.Second)); len(got) != 7 {
		t.Errorf("90 s inject %v, want all seven kinds", got)
	}
}

func kinds(fs []Fault) []FaultKind {
	var out []FaultKind
	for _, f := range fs {
		if !slices.Contains(out, f.Kind) {
			out = append(out, f.Kind)
		}
	}
	return out
}

func TestLedgerBounds(t *testing.T) {
	l := newLedger()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		l.add(id, "web-00", true)
	}
	l.record("a", confirmed, 1)
	l.record("a", unknown, 2) // a later lost answer does not undo a 2xx
	l.record("b", unknown, 3)
	l.record("b", confirmed, 4) // a keyed retry confirmed it: once
	l.record("c", unknown, 5)
	l.record("d", notCounted, 6)
	l.record("d", unknown, 7) // an earlier attempt may have counted
	l.record("e", notCounted, 8)
	b := l.bounds()["web-00"]
	if b.lo != 2 || b.hi != 4 {
		t.Errorf("bounds [%d, %d], want [2, 4]", b.lo, b.hi)
	}
	for _, c := range []struct {
		code int
		msg  string
		want outcome
	}{
		{200, "", confirmed},
		{0, "", unknown},
		{429, "too many", notCounted},
		{503, "too many occurrences of this fingerprint are waiting; retry later", notCounted},
		{503, "the occurrence was not confirmed in time; retry with the same Idempotency-Key to count it once", unknown},
		{503, "the occurrence was not counted: etcdserver: request timed out; retry (with the same Idempotency-Key to count it once)", unknown},
		{400, "kind: Unsupported value", notCounted},
	} {
		if got := itemOutcome(c.code, c.msg); got != c.want {
			t.Errorf("%d %q: %d, want %d", c.code, c.msg, got, c.want)
		}
	}
}
