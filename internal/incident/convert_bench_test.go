package incident

import (
	"context"
	"fmt"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// BenchmarkConvertStorm measures conversions of one signature's alert storm
// against a real API server: serially, and from 10 racing goroutines whose
// appends to the one Incident conflict and retry. The ratio of the two is
// the price of the optimistic concurrency that keeps the count exact.
func BenchmarkConvertStorm(b *testing.B) {
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	cfg := env.Admin
	defer func() { _ = env.Stop() }()
	scheme := kube.NewScheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// The admission policies judge the administrator's writes as anyone's:
	// the entries name who converts.
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		b.Fatal(err)
	}
	opts := Options{Caller: review.Status.UserInfo.Username}
	const storm = 50
	for _, workers := range []int{1, 10} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				keys := stormAlerts(ctx, b, c, storm)
				b.StartTimer()
				convertConcurrently(ctx, b, c, keys, workers, opts)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*storm), "µs/conversion")
		})
	}
}

func stormAlerts(ctx context.Context, b *testing.B, c client.Client, n int) []client.ObjectKey {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := c.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	keys := make([]client.ObjectKey, n)
	for i := range keys {
		a := testbuild.MakeAlert("", ns.Name).Title("p95").Host(fmt.Sprint(i)).Obj()
		if err := c.Create(ctx, a); err != nil {
			b.Fatal(err)
		}
		keys[i] = client.ObjectKeyFromObject(a)
	}
	return keys
}

func convertConcurrently(ctx context.Context, b *testing.B, c client.Client, keys []client.ObjectKey, workers int, opts Options) {
	work := make(chan client.ObjectKey)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := range work {
				if _, err := Convert(ctx, c, k, opts); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
}
