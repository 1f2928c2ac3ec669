package claim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/policy"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// Only New Alerts are candidates: an expired lease or a due retry comes
// back as New on the operator's timer, never by a claimer's clock.
func TestCandidatesAreNewAlertsInsideTheWindowOldestFirst(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	created := func(name string, d time.Duration) *testbuild.AlertWrapper {
		return testbuild.MakeAlert(name, "").Created(ago(d))
	}
	expired := &v1.AlertClaim{HolderIdentity: "x", RenewTime: metav1.NewMicroTime(now.Add(-time.Hour)), LeaseDurationSeconds: 60}
	live := &v1.AlertClaim{HolderIdentity: "x", RenewTime: metav1.NewMicroTime(now), LeaseDurationSeconds: 60}
	items := []v1.Alert{
		created("new-young", time.Minute).Phase(v1.AlertNew).Val(),
		created("stale", 2*time.Hour).Phase(v1.AlertProcessing).Claim(expired).Val(),
		created("held", 3*time.Hour).Phase(v1.AlertProcessing).Claim(live).Val(),
		created("failed-due", time.Hour).Phase(v1.AlertFailed).RetryAfter(ago(time.Second)).Val(),
		created("failed-later", time.Hour).Phase(v1.AlertFailed).RetryAfter(ago(-time.Minute)).Val(),
		created("too-old", 5*time.Hour).Phase(v1.AlertNew).Val(),
		created("old-but-seen", 5*time.Hour).Phase(v1.AlertNew).LastSeen(ago(time.Minute)).Val(),
		created("acked", time.Minute).Phase(v1.AlertAcked).Val(),
		created("undecided", time.Minute).Val(),
		created("deleting", time.Minute).Phase(v1.AlertNew).Deleting(now).Val(),
	}
	var got []string
	for _, a := range Candidates(items, 4*time.Hour, now) {
		got = append(got, a.Name)
	}
	want := []string{"old-but-seen", "new-young"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if n := len(Candidates(items, 0, now)); n != 3 {
		t.Fatalf("without a window %d candidates, want the 3 New ones", n)
	}
}

// A request's env and service keep only what they name.
func TestRequestKeepsEnvAndService(t *testing.T) {
	mk := func(ns, service, env string) v1.Alert {
		return testbuild.MakeAlert(ns+"-"+service+"-"+env, ns).Service(service).Env(env).Val()
	}
	items := []v1.Alert{mk("a", "gateway", "prod"), mk("a", "gateway", "staging"), mk("b", "db", "prod"), mk("c", "gateway", "prod")}
	var names []string
	for _, a := range (Request{Env: "prod", Service: "gateway"}).keep(items) {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"a-gateway-prod", "c-gateway-prod"}) {
		t.Fatalf("kept %v", names)
	}
}

// The namespaces a claim across namespaces looks at are those holding a
// claimable Alert, the one with the newest first; a namespace whose Alerts
// are all taken, acked or silenced is not one of them.
func TestClaimableNamespacesNewestFirst(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	mk := func(ns string, age time.Duration, phase v1.AlertPhase) *testbuild.AlertWrapper {
		return testbuild.MakeAlert(ns+"-"+age.String(), ns).Created(now.Add(-age)).Phase(phase)
	}
	items := []v1.Alert{
		mk("stale", 5*time.Hour, v1.AlertNew).Val(),
		mk("busy", 6*time.Hour, v1.AlertNew).Val(),
		mk("busy", time.Minute, v1.AlertNew).Val(),
		mk("taken", time.Second, v1.AlertProcessing).Val(),
		mk("done", time.Second, v1.AlertAcked).Val(),
		mk("middle", time.Hour, v1.AlertNew).Val(),
		mk("silenced", time.Second, v1.AlertNew).Conditions(metav1.Condition{Type: v1.AlertConditionSilenced, Status: metav1.ConditionTrue}).Val(),
	}
	if got := ClaimableNamespaces(items); !slices.Equal(got, []string{"busy", "middle", "stale"}) {
		t.Fatalf("got %v", got)
	}
	if got := ClaimableNamespaces(nil); len(got) != 0 {
		t.Fatalf("no Alerts: %v", got)
	}
}

// The namespaces a user worked in are those where it holds a lease or
// acked an Alert.
func TestWorkedNamespaces(t *testing.T) {
	in := func(ns string) *testbuild.AlertWrapper { return testbuild.MakeAlert("", ns) }
	items := []v1.Alert{
		in("held").Phase(v1.AlertProcessing).Claim(&v1.AlertClaim{HolderUser: "agent"}).Val(),
		in("acked").Phase(v1.AlertAcked).Ack("agent", "", time.Time{}).Val(),
		in("acked").Phase(v1.AlertAcked).Ack("agent", "", time.Time{}).Val(),
		in("others").Phase(v1.AlertProcessing).Claim(&v1.AlertClaim{HolderUser: "someone"}).Val(),
		in("new").Phase(v1.AlertNew).Val(),
	}
	if got := WorkedNamespaces(items, "agent"); !slices.Equal(got, []string{"acked", "held"}) {
		t.Fatalf("got %v", got)
	}
}

// A lease is what was asked, or the namespace's default, and never longer
// than the namespace's ceiling: asking for more is refused, naming the
// field and the ceiling.
func TestLeaseStaysWithinTheNamespacesCeiling(t *testing.T) {
	c := &Claimer{Client: fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithObjects(
		testbuild.MakeAlertRoutingPolicy("capped").MaxLeaseDuration(30*time.Minute).Obj(),
		// Written before the ceiling existed: its default is longer.
		testbuild.MakeAlertRoutingPolicy("older").ProcessingLockTTL(2*time.Hour).Obj(),
		testbuild.MakeAlertRoutingPolicy("fraction").ProcessingLockTTL(time.Second).MaxLeaseDuration(1500*time.Millisecond).Obj(),
	).Build()}
	for _, tc := range []struct {
		ns          string
		asked, want time.Duration
		refused     string
	}{
		{ns: "none", want: 10 * time.Minute},
		{ns: "none", asked: time.Hour, want: time.Hour},
		{ns: "none", asked: time.Hour + time.Second, refused: "a lease lasts at most 1h0m0s there"},
		{ns: "capped", asked: 30 * time.Minute, want: 30 * time.Minute},
		{ns: "capped", asked: 31 * time.Minute, refused: `lockTTL: Invalid value: "31m0s": longer than namespace capped allows: a lease lasts at most 30m0s there`},
		{ns: "older", want: time.Hour},
		{ns: "fraction", asked: 1500 * time.Millisecond, want: time.Second},
	} {
		got, err := c.lease(context.Background(), map[string]policy.Policy{}, tc.ns, tc.asked)
		var tl *LeaseTooLongError
		switch {
		case tc.refused != "":
			if !errors.As(err, &tl) || !strings.Contains(err.Error(), tc.refused) {
				t.Errorf("%s, %s: want a refusal saying %q, got %v, %v", tc.ns, tc.asked, tc.refused, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s, %s: got %v, %v; want %v", tc.ns, tc.asked, got, err, tc.want)
		}
	}
}

// Claimers that agree on how many they are take disjoint stripes of the
// oldest candidates, each oldest first, and between them the whole window;
// alone, a claimer takes the oldest candidates in order.
func TestStripesSplitTheOldestAmongClaimers(t *testing.T) {
	var alerts []*v1.Alert
	for i := range 100 {
		alerts = append(alerts, testbuild.MakeAlert(fmt.Sprintf("a-%03d", i), "ns").Obj())
	}
	// drain takes need Alerts as the claimer of rank would, none refused.
	drain := func(limit, n, rank int) []string {
		pending := hashed(alerts)
		var got []string
		for need := limit; need > 0; need-- {
			i, own := next(pending, limit, need, n, rank, 1)
			if !own {
				break
			}
			got = append(got, pending[i].alert.Name)
			pending = slices.Delete(pending, i, i+1)
		}
		return got
	}
	const limit, n = 10, 4
	taken := map[string]int{}
	for rank := range n {
		got := drain(limit, n, rank)
		if !slices.IsSorted(got) {
			t.Fatalf("rank %d took %v, not oldest first", rank, got)
		}
		for _, name := range got {
			taken[name]++
		}
	}
	for name, k := range taken {
		if k > 1 {
			t.Fatalf("%s taken by %d claimers", name, k)
		}
	}
	if len(taken) < 3*limit {
		t.Fatalf("%d claimers took %d Alerts from their own stripes, want most of their %d", n, len(taken), n*limit)
	}
	if got := drain(limit, 1, 0); !slices.Equal(got, []string{"a-000", "a-001", "a-002", "a-003", "a-004", "a-005", "a-006", "a-007", "a-008", "a-009"}) {
		t.Fatalf("alone took %v, want the 10 oldest in order", got)
	}
}

// Who is claiming is read from the live leases and remembered for a
// while: expired leases and other namespaces do not count, and the caller
// always does, once.
func TestSeenCountsTheHoldersOfLiveLeases(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	held := func(ns, user, owner string, renewed time.Duration) v1.Alert {
		return testbuild.MakeAlert("", ns).Phase(v1.AlertProcessing).Claim(&v1.AlertClaim{
			HolderUser: user, HolderIdentity: owner, RenewTime: metav1.NewMicroTime(now.Add(-renewed)), LeaseDurationSeconds: 60}).Val()
	}
	s := NewSeen(1)
	s.noteHolders([]v1.Alert{
		held("a", "u", "agent-1", 0), held("a", "u", "agent-1", 0), held("a", "u", "agent-2", 0),
		held("a", "v", "agent-1", 0), held("a", "u", "gone", time.Hour), held("a", "u", "agent-0", 0),
		held("b", "w", "elsewhere", 0),
		testbuild.MakeAlert("", "").Phase(v1.AlertNew).Val(),
	}, now)
	self := holderKey("u", "agent-0")
	if n, rank := s.claimers(self, []string{"a"}, now); n != 4 || rank != 0 {
		t.Fatalf("n %d rank %d, want 4 claimers in a (agent-0..2 of u, agent-1 of v) with agent-0 first", n, rank)
	}
	if n, _ := s.claimers(holderKey("x", "new"), []string{"a"}, now); n != 5 {
		t.Fatalf("a newcomer sees %d claimers, want 5", n)
	}
	if n, _ := s.claimers(self, nil, now); n != 5 {
		t.Fatalf("everywhere: %d claimers, want 5", n)
	}
	if n, _ := s.claimers(self, []string{"a"}, now.Add(claimerMemory+time.Second)); n != 1 {
		t.Fatalf("after claimerMemory: %d claimers, want only self", n)
	}
}

// The ack of an Alert this Claimer claimed writes with the resourceVersion
// the claim returned, reading nothing; when another writer changed the
// Alert since, the write is refused and the ack is decided again on the
// Alert as read then.
func TestAckAfterClaimWritesWithoutReading(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	mk := func(name string) *v1.Alert { return testbuild.MakeAlert(name, "ns").Phase(v1.AlertNew).Obj() }
	var gets atomic.Int32
	kc := fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithStatusSubresource(&v1.Alert{}).
		WithObjects(mk("kept"), mk("changed")).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*v1.Alert); ok {
				gets.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	c := &Claimer{Client: kc, User: "u", Clock: clocktesting.NewFakePassiveClock(now)}
	who := alertstate.Caller{User: "u", Owner: "agent"}
	for _, name := range []string{"kept", "changed"} {
		a := &v1.Alert{}
		if err := kc.Get(ctx, client.ObjectKey{Namespace: "ns", Name: name}, a); err != nil {
			t.Fatal(err)
		}
		if ok, err := c.take(ctx, a, who, time.Minute); !ok || err != nil {
			t.Fatalf("claim of %s: %v, %v", name, ok, err)
		}
	}
	gets.Store(0)
	a, err := c.Ack(ctx, client.ObjectKey{Namespace: "ns", Name: "kept"}, "agent", "done")
	if err != nil || a.Status.Phase != v1.AlertAcked {
		t.Fatalf("ack: %v, %v", a, err)
	}
	if n := gets.Load(); n != 0 {
		t.Fatalf("the ack read the Alert %d times, want none", n)
	}

	// The operator returns "changed" to New behind the Claimer's back: the
	// remembered copy says the agent holds it, the Alert says nobody does.
	changed := &v1.Alert{}
	if err := kc.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "changed"}, changed); err != nil {
		t.Fatal(err)
	}
	changed.Status.Phase, changed.Status.Claim = v1.AlertNew, nil
	if err := kc.Status().Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	gets.Store(0)
	_, err = c.Renew(ctx, client.ObjectKey{Namespace: "ns", Name: "changed"}, "agent", time.Minute)
	var nh *alertstate.NotHolderError
	if !errors.As(err, &nh) || nh.Phase != v1.AlertNew {
		t.Fatalf("renew of an Alert returned to New: %v, want NotHolderError for phase New", err)
	}
	if n := gets.Load(); n != 1 {
		t.Fatalf("the renew read the Alert %d times, want once after its copy was refused", n)
	}
}

// Candidates listed from a cache that is behind cost a refused write, never
// a second holder, and what the cache holds is not written to.
func TestClaimFromAStaleListerTakesOnlyWhatIsFree(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// The cache lists all three as New, as the server had them a moment ago.
	server, lister, _ := sharedSeenSetup(t, now, nil)
	// Meanwhile another claimer took the oldest.
	other := &Claimer{Client: server, User: "v", Clock: clocktesting.NewFakePassiveClock(now)}
	taken := &v1.Alert{}
	if err := server.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "oldest"}, taken); err != nil {
		t.Fatal(err)
	}
	if ok, err := other.take(ctx, taken, alertstate.Caller{User: "v", Owner: "other"}, time.Minute); !ok || err != nil {
		t.Fatalf("the other claimer: %v, %v", ok, err)
	}

	c := &Claimer{Client: server, Lister: lister, User: "u", Clock: clocktesting.NewFakePassiveClock(now)}
	got, err := c.Claim(ctx, Request{Namespace: "ns", Limit: 3, Owner: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range got {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"middle", "young"}) {
		t.Fatalf("took %v, want middle and young (oldest is held by another)", names)
	}
	held := &v1.Alert{}
	if err := server.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "oldest"}, held); err != nil || held.Status.Claim.HolderIdentity != "other" {
		t.Fatalf("oldest: %v, %v; want it still held by other", held.Status.Claim, err)
	}
	var still v1.AlertList
	if err := lister.List(ctx, &still); err != nil {
		t.Fatal(err)
	}
	for _, a := range still.Items {
		if a.Status.Phase != v1.AlertNew {
			t.Fatalf("the cache's %s was written to: %s", a.Name, a.Status.Phase)
		}
	}
}

// sharedSeenSetup is three New Alerts on a server, a lister that keeps
// listing them as New (a cache that is behind), and a count of the claim
// writes the server refused.
func sharedSeenSetup(t *testing.T, now time.Time, patch func(obj client.Object)) (server, lister client.Client, refused *atomic.Int32) {
	t.Helper()
	ctx := context.Background()
	mk := func(name string, age time.Duration) *v1.Alert {
		return testbuild.MakeAlert(name, "ns").Created(now.Add(-age)).Phase(v1.AlertNew).Obj()
	}
	objs := []client.Object{mk("oldest", 3*time.Minute), mk("middle", 2*time.Minute), mk("young", time.Minute)}
	refused = &atomic.Int32{}
	server = fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithStatusSubresource(&v1.Alert{}).WithObjects(objs...).
		WithInterceptorFuncs(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if patch != nil {
				patch(obj)
			}
			err := c.SubResource(sub).Patch(ctx, obj, p, opts...)
			if err != nil {
				refused.Add(1)
			}
			return err
		}}).Build()
	var cached v1.AlertList
	if err := server.List(ctx, &cached); err != nil {
		t.Fatal(err)
	}
	lister = fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithObjects(&cached.Items[0], &cached.Items[1], &cached.Items[2]).Build()
	return server, lister, refused
}

func names(alerts []v1.Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.Name)
	}
	return out
}

// Claims that share a Seen (an HTTP API replica's, one Claimer per
// request) do not reach for an Alert one of them took while the cache
// they list from is behind: no write is refused.
func TestClaimsSharingASeenSkipWhatTheyHold(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	server, lister, refused := sharedSeenSetup(t, now, nil)
	seen := NewSeen(DefaultSeen)
	claimer := func() *Claimer {
		return &Claimer{Client: server, Lister: lister, User: "u", Seen: seen, Clock: clocktesting.NewFakePassiveClock(now)}
	}
	var got []string
	for _, owner := range []string{"agent-1", "agent-2", "agent-3"} {
		a, err := claimer().Claim(ctx, Request{Namespace: "ns", Limit: 1, Owner: owner})
		if err != nil {
			t.Fatalf("%s: %v", owner, err)
		}
		got = append(got, names(a)...)
	}
	if !slices.Equal(got, []string{"oldest", "middle", "young"}) {
		t.Fatalf("took %v, want each Alert once, oldest first", got)
	}
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d claim writes refused, want none", n)
	}
}

// Two claims sharing a Seen at once: the second passes over the Alert the
// first is writing instead of racing it for the same resourceVersion.
func TestClaimsSharingASeenDoNotRace(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	writing, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	server, lister, refused := sharedSeenSetup(t, now, func(obj client.Object) {
		if obj.GetName() == "oldest" && first.CompareAndSwap(false, true) {
			close(writing)
			<-release
		}
	})
	seen := NewSeen(DefaultSeen)
	claimer := func() *Claimer {
		return &Claimer{Client: server, Lister: lister, User: "u", Seen: seen, Clock: clocktesting.NewFakePassiveClock(now)}
	}
	type result struct {
		got []v1.Alert
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := claimer().Claim(ctx, Request{Namespace: "ns", Limit: 1, Owner: "agent-1"})
		done <- result{got, err}
	}()
	<-writing
	second, err := claimer().Claim(ctx, Request{Namespace: "ns", Limit: 1, Owner: "agent-2"})
	close(release)
	r := <-done
	if err != nil || r.err != nil {
		t.Fatalf("claims: %v, %v", r.err, err)
	}
	if got := append(names(r.got), names(second)...); !slices.Equal(got, []string{"oldest", "middle"}) {
		t.Fatalf("took %v, want oldest (the first claim) and middle (the second)", got)
	}
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d claim writes refused, want none", n)
	}
}
