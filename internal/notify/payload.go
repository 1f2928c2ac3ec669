package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
)

// SchemaVersion names the version of the webhook's JSON (WebhookPayload).
// A change that could break a consumer gets a new version.
const SchemaVersion = "alertbridge.io/notification/v1"

// Headers of a webhook request.
const (
	HeaderSignature      = "X-Alertbridge-Signature"
	HeaderTimestamp      = "X-Alertbridge-Timestamp"
	HeaderEvent          = "X-Alertbridge-Event"
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderStandardSignature is Standard Webhooks' signature header.
	HeaderStandardSignature = standardwebhooks.HeaderWebhookSignature
)

// Webhook event names (WebhookPayload.event, X-Alertbridge-Event).
const (
	EventIncidentOpened         = "incident.opened"
	EventIncidentSeverityRaised = "incident.severity_raised"
	EventIncidentStateChanged   = "incident.state_changed"
	EventIncidentResolved       = "incident.resolved"
	EventIncidentClosed         = "incident.closed"
	EventAlertsFiring           = "alerts.firing"
)

// WebhookEvent is the webhook's name of an event.
func WebhookEvent(e v1.NotificationEvent) string {
	switch e {
	case v1.NotifyOpened:
		return EventIncidentOpened
	case v1.NotifySeverityRaised:
		return EventIncidentSeverityRaised
	case v1.NotifyStateChanged:
		return EventIncidentStateChanged
	case v1.NotifyResolved:
		return EventIncidentResolved
	case v1.NotifyClosed:
		return EventIncidentClosed
	}
	return EventAlertsFiring
}

// WebhookPayload is the body of every webhook request, schema
// SchemaVersion. Exactly one of incident and alerts is set.
type WebhookPayload struct {
	SchemaVersion string `json:"schemaVersion"`
	// ID is the notification's identity, also the Idempotency-Key header:
	// the same on every attempt; count it once.
	ID       string           `json:"id"`
	Event    string           `json:"event"`
	Receiver ObjectRef        `json:"receiver"`
	Incident *IncidentPayload `json:"incident,omitempty"`
	Alerts   *AlertsPayload   `json:"alerts,omitempty"`
}

// ObjectRef names an object.
type ObjectRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// IncidentPayload is the Incident as the notification announces it.
type IncidentPayload struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Service   string `json:"service"`
	Env       string `json:"env"`
	Severity  string `json:"severity"`
	Title     string `json:"title"`
	// State is the state announced; PreviousState the one this receiver
	// was last told (none for incident.opened).
	State         string     `json:"state"`
	PreviousState string     `json:"previousState,omitempty"`
	Signature     string     `json:"signature,omitempty"`
	AlertCount    int64      `json:"alertCount"`
	Note          string     `json:"note,omitempty"`
	OpenedAt      *time.Time `json:"openedAt,omitempty"`
	MitigatingAt  *time.Time `json:"mitigatingAt,omitempty"`
	ResolvedAt    *time.Time `json:"resolvedAt,omitempty"`
	ClosedAt      *time.Time `json:"closedAt,omitempty"`
	// URL links to the Incident on the dashboard (--dashboard-url).
	URL string `json:"url,omitempty"`
}

// AlertsPayload is a digest of new Alerts: the first MaxDigestItems of
// them, oldest first, and how many there are in all.
type AlertsPayload struct {
	Total int            `json:"total"`
	Items []AlertPayload `json:"items"`
}

// AlertPayload is one new Alert.
type AlertPayload struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	Service     string            `json:"service"`
	Env         string            `json:"env"`
	Kind        string            `json:"kind"`
	Severity    string            `json:"severity"`
	Title       string            `json:"title"`
	Phase       string            `json:"phase"`
	Occurrences int64             `json:"occurrences"`
	FirstSeenAt time.Time         `json:"firstSeenAt"`
	Labels      map[string]string `json:"labels,omitempty"`
	URL         string            `json:"url,omitempty"`
}

// MaxDigestItems bounds the Alerts listed in one digest.
const MaxDigestItems = 20

// Message is one HTTP request to a receiver.
type Message struct {
	URL    string
	Header http.Header
	Body   []byte
}

// Target is where a message goes and what it carries besides the event.
type Target struct {
	Receiver *v1.Receiver
	// Credential is the value of the Receiver's Secret key: PagerDuty's
	// routing key, Slack's webhook URL, the webhook's signing key.
	Credential string
	// DashboardURL is the operator's --dashboard-url ("" means no links).
	DashboardURL string
	// Now is the attempt's time, the webhook's signed timestamp.
	Now time.Time
}

// IncidentLink is the dashboard link to an Incident, "" without a
// dashboard URL.
func IncidentLink(dashboard, namespace, name string) string {
	if dashboard == "" {
		return ""
	}
	return strings.TrimRight(dashboard, "/") + "/?namespace=" + url.QueryEscape(namespace) + "&incident=" + url.QueryEscape(name)
}

// IncidentMessage is the request announcing e about inc to t's Receiver;
// told is what the Receiver was last told (nil: nothing yet).
func IncidentMessage(t Target, inc *v1.Incident, e *v1.IncidentNotification, told *v1.IncidentNotification) (*Message, error) {
	p := incidentPayload(inc, e, told, t.DashboardURL)
	switch t.Receiver.Spec.Type {
	case v1.ReceiverPagerDuty:
		return pagerDuty(t, inc, e, p)
	case v1.ReceiverSlack:
		return slack(t, slackIncident(e, p))
	case v1.ReceiverWebhook:
		return webhook(t, WebhookPayload{
			SchemaVersion: SchemaVersion, ID: e.Key, Event: WebhookEvent(e.Event),
			Receiver: ObjectRef{t.Receiver.Namespace, t.Receiver.Name}, Incident: p,
		})
	}
	return nil, fmt.Errorf("spec.type %q is not a receiver type", t.Receiver.Spec.Type)
}

// AlertsMessage is the request announcing the new Alerts of digest d:
// items (at most MaxDigestItems of them) of total.
func AlertsMessage(t Target, d *v1.AlertDigest, items []v1.Alert, total int) (*Message, error) {
	p := &AlertsPayload{Total: total, Items: make([]AlertPayload, 0, len(items))}
	for i := range items {
		a := &items[i]
		ap := AlertPayload{
			Namespace: a.Namespace, Name: a.Name, Service: a.Spec.Service, Env: a.Spec.Env, Kind: a.Spec.Kind,
			Severity: string(a.Spec.Severity), Title: a.Spec.Title, Phase: string(a.Status.Phase),
			Occurrences: a.Status.Occurrences, FirstSeenAt: a.CreationTimestamp.UTC(), Labels: a.Spec.Labels,
		}
		if t.DashboardURL != "" {
			ap.URL = strings.TrimRight(t.DashboardURL, "/") + "/?namespace=" + url.QueryEscape(a.Namespace)
		}
		p.Items = append(p.Items, ap)
	}
	switch t.Receiver.Spec.Type {
	case v1.ReceiverSlack:
		return slack(t, slackAlerts(t.Receiver, p))
	case v1.ReceiverWebhook:
		return webhook(t, WebhookPayload{
			SchemaVersion: SchemaVersion, ID: d.Key, Event: EventAlertsFiring,
			Receiver: ObjectRef{t.Receiver.Namespace, t.Receiver.Name}, Alerts: p,
		})
	}
	return nil, errors.New("spec.alerts: only slack and webhook Receivers announce Alerts")
}

func incidentPayload(inc *v1.Incident, e, told *v1.IncidentNotification, dashboard string) *IncidentPayload {
	p := &IncidentPayload{
		Namespace: inc.Namespace, Name: inc.Name, UID: string(inc.UID), Service: inc.Spec.Service, Env: inc.Spec.Env,
		Severity: string(e.Severity), Title: inc.Spec.Title, State: string(e.State), Signature: inc.Spec.Signature,
		AlertCount: inc.Status.AlertCount, Note: inc.Spec.Note, URL: IncidentLink(dashboard, inc.Namespace, inc.Name),
	}
	if told != nil {
		p.PreviousState = string(told.State)
	}
	s := &inc.Status
	p.OpenedAt, p.MitigatingAt, p.ResolvedAt, p.ClosedAt = kube.UTC(s.OpenedAt), kube.UTC(s.MitigatingAt), kube.UTC(s.ResolvedAt), kube.UTC(s.ClosedAt)
	return p
}

// --- PagerDuty Events API v2 -------------------------------------------

type pdEvent struct {
	RoutingKey  string     `json:"routing_key"`
	EventAction string     `json:"event_action"`
	DedupKey    string     `json:"dedup_key"`
	Payload     *pdPayload `json:"payload,omitempty"`
	Client      string     `json:"client,omitempty"`
	ClientURL   string     `json:"client_url,omitempty"`
	Links       []pdLink   `json:"links,omitempty"`
}

type pdPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

type pdLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// PagerDuty event actions.
const (
	PDTrigger     = "trigger"
	PDAcknowledge = "acknowledge"
	PDResolve     = "resolve"
)

// PagerDutyAction is the event_action that brings a PagerDuty alert where
// the notification says the Incident is: trigger while Open (opened,
// severity raised, open again), acknowledge while Mitigating, resolve
// once Resolved or Closed.
func PagerDutyAction(e *v1.IncidentNotification) string {
	switch e.State {
	case v1.IncidentMitigating:
		if e.Event == v1.NotifySeverityRaised {
			return PDTrigger
		}
		return PDAcknowledge
	case v1.IncidentResolved, v1.IncidentClosed:
		return PDResolve
	}
	return PDTrigger
}

// PagerDutySeverity maps a severity to PagerDuty's: P0 and P1 critical,
// P2 error, P3 warning, P4 info.
func PagerDutySeverity(s v1.Severity) string {
	switch s {
	case v1.SeverityP0, v1.SeverityP1:
		return "critical"
	case v1.SeverityP2:
		return "error"
	case v1.SeverityP3:
		return "warning"
	}
	return "info"
}

// PagerDuty bounds a summary to 1024 characters.
const pdSummaryMax = 1024

func pagerDuty(t Target, inc *v1.Incident, e *v1.IncidentNotification, p *IncidentPayload) (*Message, error) {
	ev := pdEvent{RoutingKey: t.Credential, EventAction: PagerDutyAction(e), DedupKey: DedupKey(string(inc.UID))}
	if ev.EventAction == PDTrigger {
		ev.Payload = &pdPayload{
			Summary:   clip(fmt.Sprintf("[%s] %s/%s: %s", e.Severity, inc.Spec.Service, inc.Spec.Env, inc.Spec.Title), pdSummaryMax),
			Source:    inc.Spec.Service + "/" + inc.Spec.Env,
			Severity:  PagerDutySeverity(e.Severity),
			Component: inc.Spec.Service,
			Group:     inc.Spec.Env,
			Class:     inc.Spec.Signature,
			CustomDetails: map[string]any{
				"incident": inc.Namespace + "/" + inc.Name, "event": string(e.Event), "state": string(e.State),
				"severity": string(e.Severity), "title": inc.Spec.Title, "alerts": inc.Status.AlertCount,
			},
		}
		if p.OpenedAt != nil {
			ev.Payload.Timestamp = p.OpenedAt.Format(time.RFC3339)
		}
		if inc.Spec.Signature != "" {
			ev.Payload.CustomDetails["signature"] = inc.Spec.Signature
		}
		if p.URL != "" {
			ev.Client, ev.ClientURL = "alertbridge", p.URL
			ev.Links = []pdLink{{Href: p.URL, Text: "Incident " + inc.Namespace + "/" + inc.Name + " in alertbridge"}}
		}
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the PagerDuty event: %w", err)
	}
	u := t.Receiver.Spec.URL
	if u == "" {
		u = v1.DefaultPagerDutyEventsURL
	}
	return &Message{URL: u, Header: jsonHeader(), Body: body}, nil
}

// --- Slack incoming webhooks ---------------------------------------------

type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// Slack's bounds: a header's text, a section's text.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
)

func mrkdwn(s string) slackText { return slackText{Type: "mrkdwn", Text: clip(s, slackSectionMax)} }

// slackEscape escapes what Slack reads as markup in text we did not write.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// headline says what happened, in a few words.
func headline(e *v1.IncidentNotification) string {
	switch e.Event {
	case v1.NotifyOpened:
		return "Incident opened"
	case v1.NotifySeverityRaised:
		return "Severity raised to " + string(e.Severity)
	case v1.NotifyResolved:
		return "Incident resolved"
	case v1.NotifyClosed:
		return "Incident closed"
	}
	if e.State == v1.IncidentMitigating {
		return "Incident mitigating"
	}
	return "Incident open again"
}

func stateEmoji(s v1.IncidentState) string {
	switch s {
	case v1.IncidentMitigating:
		return ":large_orange_circle:"
	case v1.IncidentResolved:
		return ":white_check_mark:"
	case v1.IncidentClosed:
		return ":white_circle:"
	}
	return ":red_circle:"
}

func slackIncident(e *v1.IncidentNotification, p *IncidentPayload) slackMessage {
	what := headline(e)
	body := "*" + slackEscape(p.Title) + "*"
	if p.Note != "" && (e.Event == v1.NotifyResolved || e.Event == v1.NotifyClosed) {
		body += "\n" + slackEscape(p.Note)
	}
	m := slackMessage{
		Text: fmt.Sprintf("[%s] %s: %s/%s: %s", p.Severity, what, p.Service, p.Env, p.Title),
		Blocks: []slackBlock{
			{Type: "header", Text: &slackText{Type: "plain_text", Text: clip(stateEmoji(e.State)+" ["+p.Severity+"] "+what, slackHeaderMax), Emoji: true}},
			{Type: "section", Text: ptr(mrkdwn(body))},
			{Type: "section", Fields: []slackText{
				mrkdwn("*Service*\n" + slackEscape(p.Service)),
				mrkdwn("*Env*\n" + slackEscape(p.Env)),
				mrkdwn("*Severity*\n" + p.Severity),
				mrkdwn("*State*\n" + p.State),
				mrkdwn("*Alerts*\n" + strconv.FormatInt(p.AlertCount, 10)),
				mrkdwn("*Incident*\n" + slackEscape(p.Namespace+"/"+p.Name)),
			}},
		},
	}
	if p.URL != "" {
		m.Blocks = append(m.Blocks, slackBlock{Type: "context", Elements: []slackText{mrkdwn("<" + p.URL + "|Open in alertbridge>")}})
	}
	return m
}

func slackAlerts(r *v1.Receiver, p *AlertsPayload) slackMessage {
	what := fmt.Sprintf("%d new Alert", p.Total)
	if p.Total != 1 {
		what += "s"
	}
	if r.Spec.Alerts != nil {
		what += " at " + string(r.Spec.Alerts.MinSeverity) + " or worse"
	}
	var lines []string
	for _, a := range p.Items {
		line := fmt.Sprintf("• [%s] %s/%s %s: %s", a.Severity, slackEscape(a.Service), slackEscape(a.Env), slackEscape(a.Kind), slackEscape(a.Title))
		if a.URL != "" {
			line += " (<" + a.URL + "|" + slackEscape(a.Namespace+"/"+a.Name) + ">)"
		} else {
			line += " (" + slackEscape(a.Namespace+"/"+a.Name) + ")"
		}
		lines = append(lines, line)
	}
	if more := p.Total - len(p.Items); more > 0 {
		lines = append(lines, fmt.Sprintf("…and %d more", more))
	}
	return slackMessage{
		Text: what + " in " + r.Namespace,
		Blocks: []slackBlock{
			{Type: "header", Text: &slackText{Type: "plain_text", Text: clip(":bell: "+what, slackHeaderMax), Emoji: true}},
			{Type: "section", Text: ptr(mrkdwn(strings.Join(lines, "\n")))},
		},
	}
}

func slack(t Target, m slackMessage) (*Message, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the Slack message: %w", err)
	}
	// The webhook URL is the credential: it comes from the Secret and is
	// never part of an error.
	return &Message{URL: t.Credential, Header: jsonHeader(), Body: body}, nil
}

// --- Generic webhook ------------------------------------------------------

func webhook(t Target, p WebhookPayload) (*Message, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the webhook payload: %w", err)
	}
	ts := t.Now.Unix()
	h := jsonHeader()
	h.Set(HeaderIdempotencyKey, p.ID)
	h.Set(HeaderEvent, p.Event)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign([]byte(t.Credential), ts, body))
	if err := signStandard(h, []byte(t.Credential), p.ID, ts, body); err != nil {
		return nil, err
	}
	return &Message{URL: t.Receiver.Spec.URL, Header: h, Body: body}, nil
}

// signStandard adds the Standard Webhooks headers (webhook-id,
// webhook-timestamp, webhook-signature), signed by that scheme's library
// with the same key, so a receiver can verify with any of its libraries
// given the secret "whsec_" + base64(key). The id is the notification's
// identity, the same on every retry, as the scheme asks.
func signStandard(h http.Header, key []byte, id string, ts int64, body []byte) error {
	if len(key) == 0 {
		return nil // nothing to sign with; the scheme refuses an empty secret
	}
	wh, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return fmt.Errorf("failed to sign the webhook: %w", err)
	}
	sig, err := wh.Sign(id, time.Unix(ts, 0), body)
	if err != nil {
		return fmt.Errorf("failed to sign the webhook: %w", err)
	}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return nil
}

// VerifyStandard checks the Standard Webhooks signature of a request, as
// that scheme's library does. Its timestamp is the one Verify checks.
func VerifyStandard(key []byte, h http.Header, body []byte) error {
	wh, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return err
	}
	return wh.VerifyIgnoringTimestamp(body, h)
}

// Sign is the X-Alertbridge-Signature of body sent at timestamp (Unix
// seconds, the X-Alertbridge-Timestamp header): "sha256=" and the hex
// HMAC-SHA256, keyed with the Receiver's signing key, of the timestamp, a
// dot and the body, so a captured request cannot be replayed later with
// another timestamp.
func Sign(key []byte, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a webhook request as a receiver should: the signature
// matches (compared in constant time), and the timestamp is within
// tolerance of now.
func Verify(key []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("no valid " + HeaderTimestamp + " header")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("the timestamp is %s away from now, more than %s: a replay, or a clock to fix", d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(Sign(key, ts, body)), []byte(signature)) {
		return errors.New("the signature does not match")
	}
	return nil
}

func jsonHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "alertbridge")
	return h
}

// clip bounds s to n bytes, cut on a rune boundary and marked with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

func ptr[T any](v T) *T { return &v }
