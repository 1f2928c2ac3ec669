package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/alertbridge/alertbridge/internal/notify"
)

// SigningKeyEnv names the environment variable webhook-sink reads the
// signing key from when --signing-key-file is not given (a flag's value
// would show in the process list).
const SigningKeyEnv = "ALERTBRIDGE_WEBHOOK_SIGNING_KEY"

// Bounds of webhook-sink.
const (
	sinkMaxBody = 1 << 20
	// sinkMaxKeys bounds the Idempotency-Keys remembered to spot retries.
	sinkMaxKeys = 10000
)

type webhookSinkOptions struct {
	listen    string
	keyFile   string
	tolerance time.Duration
}

func newWebhookSinkCommand(app *App) *cobra.Command {
	o := webhookSinkOptions{}
	cmd := &cobra.Command{
		Use:   "webhook-sink",
		Short: "Receive notifications and print them: a local endpoint to try a Receiver against",
		Long: `Listen for the notifications a Receiver sends and print each one: the event,
its Idempotency-Key, whether the signature is valid, and the JSON body.

With a signing key (--signing-key-file, or $` + SigningKeyEnv + `) it checks
X-Alertbridge-Signature as docs/notifications.md describes and
answers 401 to a request that is unsigned, wrongly signed or older than
--tolerance, as a real receiver should; without one it takes everything
(point a pagerduty Receiver's spec.url here to see its Events API v2 JSON).
A request whose Idempotency-Key it already took is a retry: it is printed as
such and answered 2xx again, so it is counted once.`,
		Example: `  # the Secret's signingKey, in a file only you can read
  alertbridge webhook-sink --listen 127.0.0.1:9095 --signing-key-file ./signing-key
  ALERTBRIDGE_WEBHOOK_SIGNING_KEY=dev-signing-key alertbridge webhook-sink`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, app)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:9095", "address to listen on")
	f.StringVar(&o.keyFile, "signing-key-file", "", "file holding the Receiver's signing key (default $"+SigningKeyEnv+"; none: signatures are not checked)")
	f.DurationVar(&o.tolerance, "tolerance", 5*time.Minute, "how far X-Alertbridge-Timestamp may be from now")
	return cmd
}

func (o *webhookSinkOptions) run(cmd *cobra.Command, app *App) error {
	if o.tolerance <= 0 {
		return Exit(ExitUsage, fmt.Errorf("--tolerance must be positive, got %s", o.tolerance))
	}
	key := []byte(os.Getenv(SigningKeyEnv))
	if o.keyFile != "" {
		raw, err := os.ReadFile(o.keyFile)
		if err != nil {
			return Exit(ExitUsage, fmt.Errorf("--signing-key-file: %w", err))
		}
		key = bytes.TrimSpace(raw)
		if len(key) == 0 {
			return Exit(ExitUsage, fmt.Errorf("--signing-key-file: %s is empty", o.keyFile))
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return Exit(ExitUsage, fmt.Errorf("--listen: %w", err))
	}
	check := "signatures checked"
	if len(key) == 0 {
		check = "signatures NOT checked (no signing key)"
	}
	fmt.Fprintf(app.Out, "webhook-sink listening on http://%s (%s)\n", ln.Addr(), check)
	srv := &http.Server{Handler: NewWebhookSink(app.Out, key, o.tolerance, time.Now), ReadHeaderTimeout: 10 * time.Second}
	ctx := cmd.Context()
	if ctx != nil {
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewWebhookSink is webhook-sink's handler: it prints every request to out
// and answers 204, or 401 when key is set and the signature does not
// verify (notify.Verify, within tolerance of now).
func NewWebhookSink(out io.Writer, key []byte, tolerance time.Duration, now func() time.Time) http.Handler {
	s := &webhookSink{out: out, key: key, tolerance: tolerance, now: now, seen: map[string]time.Time{}}
	return s
}

type webhookSink struct {
	out       io.Writer
	key       []byte
	tolerance time.Duration
	now       func() time.Time

	mu   sync.Mutex // serialises the output and seen
	seen map[string]time.Time
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST notifications here", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, sinkMaxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	now := s.now()
	event := r.Header.Get(notify.HeaderEvent)
	if event == "" {
		event = "(no " + notify.HeaderEvent + ")"
	}
	idem := r.Header.Get(notify.HeaderIdempotencyKey)

	verdict, status := "signature not checked", http.StatusNoContent
	if len(s.key) > 0 {
		err := notify.Verify(s.key, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, now, s.tolerance)
		verdict = "signature valid"
		if err == nil && r.Header.Get(notify.HeaderStandardSignature) != "" {
			if err = notify.VerifyStandard(s.key, r.Header, body); err == nil {
				verdict = "signatures valid (" + notify.HeaderSignature + " and Standard Webhooks)"
			}
		}
		if err != nil {
			verdict, status = "REJECTED: "+err.Error(), http.StatusUnauthorized
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s\n", now.UTC().Format(time.RFC3339), r.Method, r.URL.RequestURI(), event)
	if idem != "" {
		fmt.Fprintf(&b, "  %s: %s\n", notify.HeaderIdempotencyKey, idem)
	}
	fmt.Fprintf(&b, "  %s\n", verdict)
	if status < 300 && idem != "" {
		if first, ok := s.seen[idem]; ok {
			fmt.Fprintf(&b, "  a retry: this %s was taken at %s; count it once\n", notify.HeaderIdempotencyKey, first.UTC().Format(time.RFC3339))
		} else {
			if len(s.seen) >= sinkMaxKeys {
				clear(s.seen)
			}
			s.seen[idem] = now
		}
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "  ", "  ") == nil {
		b.WriteString("  " + pretty.String() + "\n")
	} else if len(body) > 0 {
		fmt.Fprintf(&b, "  (not JSON, %d bytes)\n", len(body))
	}
	_, _ = io.WriteString(s.out, b.String()+"\n")
	if status == http.StatusUnauthorized {
		http.Error(w, "signature: "+strings.TrimPrefix(verdict, "REJECTED: "), status)
		return
	}
	w.WriteHeader(status)
}
