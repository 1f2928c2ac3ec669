package cli_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/notify"
)

// syncBuffer is an io.Writer the sink's handler and the spec share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ = Describe("alertbridge webhook-sink", func() {
	const key = "whsec-dev"
	now := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	body := `{"schemaVersion":"alertbridge.io/notification/v1","id":"uid-1/abcd1234/1/opened","event":"incident.opened"}`

	post := func(srv *httptest.Server, body string, sentAt time.Time, sign func(ts int64, body []byte) string) int {
		GinkgoHelper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/alertbridge", strings.NewReader(body))
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set(notify.HeaderEvent, "incident.opened")
		req.Header.Set(notify.HeaderIdempotencyKey, "uid-1/abcd1234/1/opened")
		if sign != nil {
			ts := sentAt.Unix()
			req.Header.Set(notify.HeaderTimestamp, strconv.FormatInt(ts, 10))
			req.Header.Set(notify.HeaderSignature, sign(ts, []byte(body)))
		}
		resp, err := srv.Client().Do(req)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.Body.Close()).To(Succeed())
		return resp.StatusCode
	}
	signed := func(ts int64, b []byte) string { return notify.Sign([]byte(key), ts, b) }

	It("prints what it takes, checks the signature as documented and marks retries", func() {
		out := &syncBuffer{}
		srv := httptest.NewServer(cli.NewWebhookSink(out, []byte(key), 5*time.Minute, func() time.Time { return now }))
		DeferCleanup(srv.Close)

		Expect(post(srv, body, now.Add(-time.Second), signed)).To(Equal(http.StatusNoContent))
		Expect(out.String()).To(ContainSubstring("2026-11-30T06:00:00Z POST /alertbridge incident.opened\n"))
		Expect(out.String()).To(ContainSubstring("Idempotency-Key: uid-1/abcd1234/1/opened\n  signature valid\n"))
		Expect(out.String()).To(ContainSubstring(`"event": "incident.opened"`))
		Expect(out.String()).NotTo(ContainSubstring("a retry"))

		Expect(post(srv, body, now, signed)).To(Equal(http.StatusNoContent), "a retry is taken again")
		Expect(out.String()).To(ContainSubstring("a retry: this Idempotency-Key was taken at 2026-11-30T06:00:00Z; count it once"))

		Expect(post(srv, strings.Replace(body, "opened", "closed", 1), now, func(ts int64, _ []byte) string {
			return signed(ts, []byte(body)) // signed over another body
		})).To(Equal(http.StatusUnauthorized))
		Expect(out.String()).To(ContainSubstring("REJECTED: the signature does not match"))
		Expect(post(srv, body, now.Add(-10*time.Minute), signed)).To(Equal(http.StatusUnauthorized), "a replay of an old request")
		Expect(post(srv, body, now, nil)).To(Equal(http.StatusUnauthorized), "unsigned")
		Expect(out.String()).To(ContainSubstring("REJECTED: no valid X-Alertbridge-Timestamp header"))
	})

	It("checks the Standard Webhooks signature too when the request carries one", func() {
		out := &syncBuffer{}
		srv := httptest.NewServer(cli.NewWebhookSink(out, []byte(key), 5*time.Minute, func() time.Time { return now }))
		DeferCleanup(srv.Close)
		wh, err := standardwebhooks.NewWebhookRaw([]byte(key))
		Expect(err).NotTo(HaveOccurred())
		send := func(standardBody string) int {
			GinkgoHelper()
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/alertbridge", strings.NewReader(body))
			Expect(err).NotTo(HaveOccurred())
			ts := now.Unix()
			req.Header.Set(notify.HeaderTimestamp, strconv.FormatInt(ts, 10))
			req.Header.Set(notify.HeaderSignature, signed(ts, []byte(body)))
			sig, err := wh.Sign("uid-1/abcd1234/1/opened", now, []byte(standardBody))
			Expect(err).NotTo(HaveOccurred())
			req.Header.Set(standardwebhooks.HeaderWebhookID, "uid-1/abcd1234/1/opened")
			req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
			req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
			resp, err := srv.Client().Do(req)
			Expect(err).NotTo(HaveOccurred())
			Expect(resp.Body.Close()).To(Succeed())
			return resp.StatusCode
		}
		Expect(send(body)).To(Equal(http.StatusNoContent))
		Expect(out.String()).To(ContainSubstring("signatures valid (X-Alertbridge-Signature and Standard Webhooks)"))
		Expect(send(`{"other":"body"}`)).To(Equal(http.StatusUnauthorized), "a Standard Webhooks signature over another body")
		Expect(out.String()).To(ContainSubstring("REJECTED: unable to verify payload"))
	})

	It("takes everything without a signing key, saying so", func() {
		out := &syncBuffer{}
		srv := httptest.NewServer(cli.NewWebhookSink(out, nil, 5*time.Minute, func() time.Time { return now }))
		DeferCleanup(srv.Close)
		Expect(post(srv, `{"routing_key":"x","event_action":"trigger"}`, now, nil)).To(Equal(http.StatusNoContent))
		Expect(out.String()).To(ContainSubstring("signature not checked"))
		Expect(out.String()).To(ContainSubstring(`"event_action": "trigger"`))
	})

	It("refuses bad flags with exit 1", func() {
		Expect(run("", "webhook-sink", "--tolerance", "0s").code).To(Equal(cli.ExitUsage))
		Expect(run("", "webhook-sink", "--signing-key-file", "/nonexistent/key").code).To(Equal(cli.ExitUsage))
	})
})
