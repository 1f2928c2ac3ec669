package alertstate

import (
	"fmt"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

func key(i int) string { return fmt.Sprintf("%016x", i) }

func TestKeysAreKeptForTheWindow(t *testing.T) {
	s := &v1.AlertStatus{}
	if n := AddKeys(s, t0, key(1), key(2), key(1)); n != 3 {
		t.Fatalf("took %d of 3", n)
	}
	later := t0.Add(KeyWindow)
	AddKeys(s, later, key(3))
	for _, k := range []int{1, 2, 3} {
		if !HasKey(s, key(k)) {
			t.Fatalf("key %d forgotten inside the window", k)
		}
	}
	if HasKey(s, key(4)) || HasKey(s, "short") {
		t.Fatal("a key never added is kept")
	}
	AddKeys(s, later.Add(time.Minute), key(5))
	if HasKey(s, key(1)) || !HasKey(s, key(3)) || !HasKey(s, key(5)) {
		t.Fatalf("after the window: %v", s.IngestKeys)
	}
	if len(s.IngestKeys) != 2 {
		t.Fatalf("one entry per minute: %v", s.IngestKeys)
	}
}

func TestKeysRefuseRatherThanForget(t *testing.T) {
	s := &v1.AlertStatus{}
	keys := make([]string, MaxKeys+10)
	for i := range keys {
		keys[i] = key(i)
	}
	if n := AddKeys(s, t0, keys...); n != MaxKeys {
		t.Fatalf("took %d, want %d", n, MaxKeys)
	}
	if !HasKey(s, key(0)) || HasKey(s, key(MaxKeys)) {
		t.Fatal("refused the wrong keys")
	}
	if n := AddKeys(s, t0.Add(time.Minute), key(MaxKeys)); n != 0 {
		t.Fatal("a full log took a key inside the window")
	}
	if n := AddKeys(s, t0.Add(KeyWindow+time.Minute), key(MaxKeys)); n != 1 {
		t.Fatal("the log stays full after its keys aged out")
	}
	// The controller cannot refuse: past the bound it forgets the oldest.
	ForceAddKeys(s, t0.Add(KeyWindow+time.Minute), keys[:MaxKeys]...)
	if HasKey(s, key(MaxKeys)) || !HasKey(s, key(0)) || !HasKey(s, key(MaxKeys-1)) {
		t.Fatal("forced keys: the oldest must go, the new ones stay")
	}
	if size := len(fmt.Sprint(s.IngestKeys)); size > 140_000 {
		t.Fatalf("%d keys take %d bytes", MaxKeys, size)
	}
}
