package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/pgcluster"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// benchAlerts is how many Alerts the dashboard benchmark summarises.
const benchAlerts = 1000

// BenchmarkDashboard measures GET /v1/alerts/dashboard over the same
// benchAlerts Alerts, through the HTTP API as shipped, answered from its
// cache and from the PostgreSQL mirror, so the cost of reading history
// shows as a ratio.
// Anonymous access keeps TokenReview/SubjectAccessReview out of both.
func BenchmarkDashboard(b *testing.B) {
	ctx := context.Background()
	pctx, cancel := context.WithTimeout(ctx, pgStartup)
	defer cancel()
	pg, err := pgcluster.Start(pctx)
	must(b, err)
	b.Cleanup(pg.Stop)
	store, err := mirror.Open(ctx, pg.DSN())
	must(b, err)
	b.Cleanup(store.Close)
	_, err = store.Migrate(ctx, mirror.MigrateOptions{})
	must(b, err)

	ns := testbuild.Namespace(gomega.NewWithT(b), k8s, "read-")
	for i := range benchAlerts {
		a := testbuild.MakeAlert(fmt.Sprintf("a-%04d", i), ns).Service(fmt.Sprintf("svc-%d", i%25)).Host(fmt.Sprintf("n%d", i)).Obj()
		must(b, k8s.Create(ctx, a))
		now := metav1.Now()
		orig := a.DeepCopy()
		a.Status = v1.AlertStatus{Phase: v1.AlertNew, Fingerprint: fmt.Sprintf("fp%d", i), Occurrences: int64(1 + i%7), FirstSeenAt: &now, LastSeenAt: &now}
		must(b, opK8s.Status().Patch(ctx, a, client.MergeFrom(orig)))
		_, err := store.UpsertAlert(ctx, a)
		must(b, err)
	}

	for _, bc := range []struct {
		name    string
		history httpapi.History
	}{{"cache", nil}, {"mirror", store}} {
		b.Run(bc.name, func(b *testing.B) {
			api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: httpapi.Config{DashboardAnonymous: true, History: bc.history}})
			must(b, err)
			srv := httptest.NewServer(api.Server.Handler())
			defer func() {
				srv.Close()
				must(b, api.Stop(time.Minute))
			}()
			url := srv.URL + "/v1/alerts/dashboard?namespace=" + ns + "&windowMinutes=0"
			var d struct {
				Counts map[string]int64 `json:"counts"`
			}
			if code, body := get(b, srv, url[len(srv.URL):], "", &d); code != http.StatusOK || d.Counts["New"] != benchAlerts {
				b.Fatalf("%d %s", code, body)
			}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := srv.Client().Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
