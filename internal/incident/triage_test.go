package incident

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/alertbridge/alertbridge/test/integration/testhttp"
)

// TestWebhookTokenStaysWithTheOrigin: the bearer token and the
// Idempotency-Key follow a redirect within the webhook's origin and never
// to another, even on the same host, whatever the caller's http.Client
// would do; a refused redirect is not retried.
func TestWebhookTokenStaysWithTheOrigin(t *testing.T) {
	elsewhere := testhttp.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	var hook *testhttp.Recorder
	hook = testhttp.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, elsewhere.URL+"/triage", http.StatusPermanentRedirect)
		case "/moved":
			http.Redirect(w, r, hook.URL+"/triage", http.StatusPermanentRedirect)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	})
	run := &Run{Run: "inc-1-triage-1"}
	if _, err := PostWebhook(context.Background(), http.DefaultClient, hook.URL+"/moved", "s3cret", run); err != nil {
		t.Fatalf("a same-origin redirect: %v", err)
	}
	retryable, err := PostWebhook(context.Background(), http.DefaultClient, hook.URL+"/away", "s3cret", run)
	if err == nil || !strings.Contains(err.Error(), "refused a redirect from "+hook.URL) || retryable {
		t.Fatalf("a redirect to another origin: %v (retryable %v)", err, retryable)
	}
	if got := elsewhere.Received(); len(got) != 0 {
		t.Fatalf("the other origin received %d requests, first with %v", len(got), got[0].Header)
	}
	got := hook.Received()
	if len(got) != 3 {
		t.Fatalf("the webhook received %d requests, want 3", len(got))
	}
	for _, r := range got {
		if h := r.Header; h.Get("Authorization") != "Bearer s3cret" || h.Get("Idempotency-Key") != run.Run {
			t.Fatalf("a request at the webhook's origin without its headers: %v", h)
		}
	}
}

// TestWebhookErrorsAreOurWords: the receiver's reason phrase, body or
// garbage never reaches the error (which reaches conditions and Events).
func TestWebhookErrorsAreOurWords(t *testing.T) {
	const canary = "CANARY-19c2"
	raw := func(answer string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_, _ = bufio.NewReader(c).Peek(1)
					_, _ = io.WriteString(c, answer)
				}()
			}
		}()
		return "http://" + l.Addr().String()
	}
	body := testhttp.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, canary, http.StatusForbidden) })
	for _, tc := range []struct{ name, url, want string }{
		{"reason phrase", raw("HTTP/1.1 503 " + canary + "\r\nContent-Length: 0\r\n\r\n"), "webhook answered HTTP 503 (Service Unavailable)"},
		{"body", body.URL, "webhook answered HTTP 403 (Forbidden)"},
		{"not HTTP", raw(canary + "\r\n\r\n"), "no valid HTTP answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PostWebhook(context.Background(), http.DefaultClient, tc.url, "", &Run{Run: "r"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), canary) {
				t.Fatalf("got %v, want %q and no %s", err, tc.want, canary)
			}
		})
	}
}
