package incident

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// PostmortemKey is the ConfigMap key holding the Markdown draft.
const PostmortemKey = "postmortem.md"

// PostmortemName is the name of the ConfigMap holding inc's draft.
func PostmortemName(inc *v1.Incident) string {
	const suffix = "-postmortem"
	name := inc.Name
	if len(name)+len(suffix) > 253 {
		name = name[:253-len(suffix)]
	}
	return name + suffix
}

// Postmortem drafts the Markdown postmortem of a closed Incident: summary,
// durations, timeline, linked alerts and triage runs.
func Postmortem(inc *v1.Incident) string {
	var b strings.Builder
	s := &inc.Status
	fmt.Fprintf(&b, "# Postmortem draft: %s\n\n", inc.Spec.Title)
	b.WriteString("## Summary\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Incident | `%s/%s` |\n", inc.Namespace, inc.Name)
	fmt.Fprintf(&b, "| Service / env | %s / %s |\n", inc.Spec.Service, inc.Spec.Env)
	fmt.Fprintf(&b, "| Severity | %s |\n", inc.Spec.Severity)
	fmt.Fprintf(&b, "| Signature | `%s` |\n", inc.Spec.Signature)
	fmt.Fprintf(&b, "| State | %s |\n", inc.Spec.State)
	fmt.Fprintf(&b, "| Closing note | %s |\n\n", oneLine(inc.Spec.Note))

	b.WriteString("## Durations\n\n")
	fmt.Fprintf(&b, "- Opened: %s\n", stamp(s.OpenedAt))
	fmt.Fprintf(&b, "- Mitigating: %s\n", stamp(s.MitigatingAt))
	fmt.Fprintf(&b, "- Resolved: %s\n", stamp(s.ResolvedAt))
	fmt.Fprintf(&b, "- Closed: %s\n", stamp(s.ClosedAt))
	fmt.Fprintf(&b, "- Time to mitigate: %s\n", span(s.OpenedAt, s.MitigatingAt))
	fmt.Fprintf(&b, "- Time to resolve: %s\n", span(s.OpenedAt, s.ResolvedAt))
	fmt.Fprintf(&b, "- Open for: %s\n\n", span(s.OpenedAt, s.ClosedAt))

	b.WriteString("## Timeline\n\n")
	if first := firstSeq(s.Timeline); first > 1 {
		fmt.Fprintf(&b, "_The %d oldest entries were trimmed from the cluster (see the mirror)._\n\n", first-1)
	}
	b.WriteString("| # | at | type | by | alert | message |\n|---|---|---|---|---|---|\n")
	for _, e := range s.Timeline {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", e.Seq, e.At.UTC().Format(time.RFC3339), e.Type, oneLine(e.Author), e.AlertRef, oneLine(e.Message))
	}

	fmt.Fprintf(&b, "\n## Linked alerts (%d)\n\n", s.AlertCount)
	if int64(len(s.AlertRefs)) < s.AlertCount {
		fmt.Fprintf(&b, "_Newest %d shown._\n\n", len(s.AlertRefs))
	}
	for _, a := range s.AlertRefs {
		fmt.Fprintf(&b, "- `%s`\n", a)
	}

	b.WriteString("\n## Triage runs\n\n")
	if t := s.Triage; t != nil && t.Runs > 0 {
		fmt.Fprintf(&b, "- Runs: %d\n- Last run: `%s` at %s (alert `%s`)\n- Cooldown until: %s\n",
			t.Runs, refName(t.LastRunRef), stamp(t.LastTriageAt), t.LastRunAlertRef, stamp(t.CooldownUntil))
	} else {
		b.WriteString("- No triage run for this Incident (the signature was in cooldown, or none was due).\n")
	}
	for _, e := range s.Timeline {
		if e.Type == v1.TimelineTriageStarted {
			fmt.Fprintf(&b, "- %s: %s\n", e.At.UTC().Format(time.RFC3339), oneLine(e.Message))
		}
	}
	b.WriteString("\n## What went well / what to improve / action items\n\n_To be written._\n")
	return b.String()
}

func stamp(t *metav1.Time) string {
	if t == nil {
		return "—"
	}
	return t.UTC().Format(time.RFC3339)
}

func span(from, to *metav1.Time) string {
	if from == nil || to == nil {
		return "—"
	}
	return to.Sub(from.Time).Round(time.Second).String()
}

func refName(r *v1.LocalObjectReference) string {
	if r == nil {
		return ""
	}
	return r.Name
}

func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "|", "\\|").Replace(s)
}

// firstSeq is the seq of the oldest entry the timeline holds or summarises.
func firstSeq(tl []v1.TimelineEntry) int64 {
	if len(tl) == 0 {
		return 0
	}
	if tl[0].Summary != nil {
		return tl[0].Summary.FirstSeq
	}
	return tl[0].Seq
}
