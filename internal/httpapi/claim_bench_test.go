package httpapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/bench"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// claimAckBatch is how many Alerts are made ready (New) at a time, outside
// the timer.
const claimAckBatch = 100

// BenchmarkClaimAck measures one claim of one Alert and its ack by an agent
// (a ServiceAccount bound to the shipped agent role) over the HTTP API
// (bench.AgentClient, TLS, token reviews cached as shipped) and through
// the Go client path the CLI uses (internal/claim with the agent's own
// credentials), in the same run against the same operator, so the HTTP
// path's cost shows as a ratio. claims/s is the throughput of one agent.
func BenchmarkClaimAck(b *testing.B) {
	api := startAgentAPI(b)
	ctx := context.Background()
	for _, path := range []string{"http", "go-client"} {
		b.Run(path, func(b *testing.B) {
			ns := testbuild.Namespace(gomega.NewWithT(b), k8s, "agents-")
			agent := roleCaller(b, ns, "supervisor", "agent")
			var claimAck func() error
			switch path {
			case "http":
				c := &bench.AgentClient{BaseURL: api.url, Token: agent.token, HTTP: api.client}
				claimAck = func() error {
					got, err := c.Claim(ctx, base.ClaimRequest{Namespace: ns, Limit: 1, Owner: "bench"})
					if err != nil {
						return err
					}
					if got.NothingToClaim {
						return errors.New("nothing to claim")
					}
					_, err = c.Ack(ctx, got.Alerts[0].AlertRef, base.AckRequest{Owner: "bench"})
					return err
				}
			case "go-client":
				rc, err := env.ServiceAccountConfig(ns, "supervisor")
				must(b, err)
				kc, err := client.New(rc, client.Options{Scheme: kube.NewScheme()})
				must(b, err)
				cl := &claim.Claimer{Client: kc, User: agent.user}
				claimAck = func() error {
					got, err := cl.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "bench", Window: 240 * time.Minute})
					if err != nil {
						return err
					}
					_, err = cl.Ack(ctx, client.ObjectKeyFromObject(&got[0]), "bench", "")
					return err
				}
			}
			ready := 0
			b.ResetTimer()
			start := time.Now()
			var paused time.Duration
			for i := 0; i < b.N; i++ {
				if ready == 0 {
					b.StopTimer()
					p := time.Now()
					newAlerts(b, ns, min(claimAckBatch, b.N-i))
					ready = min(claimAckBatch, b.N-i)
					paused += time.Since(p)
					b.StartTimer()
				}
				if err := claimAck(); err != nil {
					b.Fatal(err)
				}
				ready--
			}
			b.ReportMetric(float64(b.N)/(time.Since(start)-paused).Seconds(), "claims/s")
		})
	}
}
