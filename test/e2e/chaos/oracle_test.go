package chaos

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func TestCheckKeysFindsAnOccurrenceCountedTwice(t *testing.T) {
	j, err := newJournal(filepath.Join(t.TempDir(), "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rn := &runner{ledger: newLedger(), journal: j, caller: "system:serviceaccount:chaos:monitor"}
	rn.ledger.add("fp1@2026-11-30T07:49:49Z", "am-11", true)
	rn.ledger.add("mon0-7", "web-01", true)
	rn.ledger.add("mon0-8-nokey", "web-01", false)
	j.Add(Entry{Op: "alertmanager", IDs: []string{"fp1@2026-11-30T07:49:49Z"}, Code: 200})
	hashed := intake.HashKey(rn.caller, "fp1@2026-11-30T07:49:49Z")

	holder := func(name string, phase v1.AlertPhase, how func(*v1.Alert)) v1.Alert {
		a := testbuild.MakeAlert(name, "").Phase(phase).Obj()
		how(a)
		return *a
	}
	created := func(a *v1.Alert) { a.Annotations = map[string]string{v1.IngestKeyAnnotation: hashed} }
	counted := func(a *v1.Alert) { alertstate.AddKeys(&a.Status, time.Now(), hashed) }
	fired := func(a *v1.Alert) { alertstate.Fired(&a.Status, hashed) }

	once := []v1.Alert{holder("acked", v1.AlertAcked, created), holder("folded", v1.AlertDeduplicated, created)}
	if v := rn.checkKeys(once); len(v) != 0 {
		t.Errorf("one live holder and a folded retry: %v", v)
	}
	twice := []v1.Alert{holder("acked", v1.AlertAcked, counted), holder("new", v1.AlertNew, fired)}
	v := rn.checkKeys(twice)
	if len(v) != 1 || !strings.Contains(v[0], "fp1@2026-11-30T07:49:49Z") || !strings.Contains(v[0], "acked, new") {
		t.Errorf("a key held by two counting Alerts: %v", v)
	}
}

func TestOperatorsOwnFindsForgedTriageAndEntries(t *testing.T) {
	in := testbuild.MakeIncident("inc-1", "").State(v1.IncidentOpen).Obj()
	incident.AppendAlert(in, "a", time.Now(), "alice@example.com")
	incident.ApplyOpen(in, time.Now(), nil)
	incident.ApplyTriage(in, time.Now(), time.Minute, "a")
	if v := operatorsOwn(in); len(v) != 0 {
		t.Errorf("what the operator wrote: %v", v)
	}
	in.Status.Triage.LastRunRef.Name = "pwn"
	in.Status.Timeline[1].Author = "cto@example.com"
	v := operatorsOwn(in)
	if len(v) != 2 || !strings.Contains(v[0], "is &{pwn}, not inc-1-triage-1") || !strings.Contains(v[1], `Opened entry 2 names "cto@example.com"`) {
		t.Errorf("a forged run name and an operator entry in someone's name: %v", v)
	}
}
