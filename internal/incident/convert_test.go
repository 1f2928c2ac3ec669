package incident

import (
	"context"
	"fmt"
	"testing"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// TestConvertCountsPastTheBounds: past 100 Alerts, with the operator
// trimming the timeline to its newest 100 between conversions (mirror
// off), the record no longer shows every Alert; each new conversion still
// counts its Alert once, and converting an Alert already counted counts
// nothing, whether its ref is still shown or long gone.
func TestConvertCountsPastTheBounds(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithStatusSubresource(&v1.Incident{}, &v1.Alert{}).Build()
	clk := clocktesting.NewFakeClock(t0)
	opts := Options{Clock: clk, Caller: "olga"}
	const n = 150
	keys := make([]client.ObjectKey, n)
	for i := range keys {
		a := testbuild.MakeAlert(fmt.Sprintf("a-%03d", i), "prod").Title("p95").Host(fmt.Sprint(i)).Obj()
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		keys[i] = client.ObjectKeyFromObject(a)
	}
	// operator is the operator's write after each append, the mirror off:
	// it opens the Incident, sees the new ref and trims.
	operator := func(name string) {
		var inc v1.Incident
		if err := c.Get(ctx, client.ObjectKey{Namespace: "prod", Name: name}, &inc); err != nil {
			t.Fatal(err)
		}
		orig := inc.DeepCopy()
		if inc.Status.OpenedAt == nil {
			ApplyOpen(&inc, clk.Now(), nil)
		}
		Observe(&inc, clk.Now())
		if _, err := PatchStatus(ctx, c, orig, &inc, false); err != nil {
			t.Fatal(err)
		}
	}
	var name string
	for i, k := range keys {
		res, err := Convert(ctx, c, k, opts)
		if err != nil {
			t.Fatalf("conversion %d: %v", i, err)
		}
		if !res.Appended || res.Created != (i == 0) {
			t.Fatalf("conversion %d: created %v, appended %v", i, res.Created, res.Appended)
		}
		name = res.Incident.Name
		operator(name)
	}
	for _, k := range []client.ObjectKey{keys[0], keys[n-1]} { // gone from the record, and still in it
		res, err := Convert(ctx, c, k, opts)
		if err != nil || res.Appended || res.Incident.Name != name {
			t.Fatalf("converting %s again: %+v, %v", k.Name, res, err)
		}
	}
	var inc v1.Incident
	if err := c.Get(ctx, client.ObjectKey{Namespace: "prod", Name: name}, &inc); err != nil {
		t.Fatal(err)
	}
	if inc.Status.AlertCount != n || len(inc.Status.AlertRefs) != MaxAlertRefs || len(inc.Status.Timeline) != MaxTimeline {
		t.Fatalf("count %d (want %d), %d refs, %d entries", inc.Status.AlertCount, n, len(inc.Status.AlertRefs), len(inc.Status.Timeline))
	}
}
