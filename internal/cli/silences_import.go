package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/silence"
)

// amSilence is a silence as Alertmanager's /api/v2/silences returns it
// (GettableSilence) or takes it (PostableSilence); what alertbridge does
// not use (updatedAt) is ignored.
type amSilence struct {
	ID        string      `json:"id"`
	Matchers  []amMatcher `json:"matchers"`
	StartsAt  *time.Time  `json:"startsAt"`
	EndsAt    *time.Time  `json:"endsAt"`
	CreatedBy string      `json:"createdBy"`
	Comment   string      `json:"comment"`
	Status    *struct {
		State string `json:"state"`
	} `json:"status"`
}

// amMatcher is Alertmanager's matcher: isEqual false negates; absent
// means true, as in Alertmanager's API.
type amMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual"`
}

func (m amMatcher) operator() v1.MatchOperator {
	equal := m.IsEqual == nil || *m.IsEqual
	switch {
	case m.IsRegex && equal:
		return v1.MatchRegexp
	case m.IsRegex:
		return v1.MatchNotRegexp
	case equal:
		return v1.MatchEqual
	}
	return v1.MatchNotEqual
}

// readAMSilences reads one silence or an array of them.
func readAMSilences(data []byte) ([]amSilence, error) {
	data = bytes.TrimSpace(data)
	var out []amSilence
	if bytes.HasPrefix(data, []byte("[")) {
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
	var one amSilence
	if err := json.Unmarshal(data, &one); err != nil {
		return nil, err
	}
	return []amSilence{one}, nil
}

// toSilence is am as a Silence of ns at now, or why it is not imported:
// skip is true for a silence that already ended. As Alertmanager does for a
// new silence, a start in the past becomes now (the creation time); the
// creator becomes you (the API server records who creates a Silence), so
// the comment keeps who created it in Alertmanager.
func (am *amSilence) toSilence(ns string, now time.Time) (s *v1.Silence, skip bool, err error) {
	if am.Status != nil && am.Status.State == "expired" {
		return nil, true, nil
	}
	if am.EndsAt == nil {
		return nil, false, errors.New("endsAt is required")
	}
	if !am.EndsAt.After(now) {
		return nil, true, nil
	}
	if len(am.Matchers) == 0 {
		return nil, false, errors.New("matchers: at least one is required")
	}
	s = &v1.Silence{ObjectMeta: metav1.ObjectMeta{Namespace: ns}, Spec: v1.SilenceSpec{EndsAt: metav1.NewTime(*am.EndsAt)}}
	for _, m := range am.Matchers {
		s.Spec.Matchers = append(s.Spec.Matchers, v1.SilenceMatcher{Name: m.Name, Operator: m.operator(), Value: m.Value})
	}
	if am.StartsAt != nil && am.StartsAt.After(now) {
		s.Spec.StartsAt = &metav1.Time{Time: *am.StartsAt}
	}
	// The Silence is named after the Alertmanager silence, so importing the
	// same file twice creates it once.
	id := strings.ToLower(am.ID)
	if id != "" && len(validation.IsDNS1123Subdomain("am-"+id)) == 0 {
		s.Name = "am-" + id
	} else {
		s.GenerateName = "am-"
	}
	origin := "imported from Alertmanager"
	if am.ID != "" {
		origin += " silence " + am.ID
	}
	if am.CreatedBy != "" {
		origin += ", created by " + am.CreatedBy
	}
	s.Spec.Comment = clip.To(strings.TrimSpace(am.Comment+" ("+origin+")"), 1024)
	return s, false, nil
}

func newSilencesImportCommand(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE|-",
		Short: "Create Silences from Alertmanager silences (the JSON of /api/v2/silences: one silence or an array)",
		Long: `Reads silences in the shape of Alertmanager's /api/v2/silences (matchers
with name, value, isRegex, isEqual; startsAt, endsAt, createdBy, comment)
and creates one Silence each in the namespace, named am-<id>, so a second
import of the same file creates nothing new. Expired silences are skipped;
a start in the past becomes now, as in Alertmanager. You become
spec.createdBy; the comment keeps the Alertmanager creator and id.`,
		Example: `  curl -s http://alertmanager:9093/api/v2/silences | alertbridge silences import - -n prod
  amtool silence query -o json > silences.json && alertbridge silences import silences.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return Exit(ExitUsage, fmt.Errorf("failed to read %s: %w", args[0], err))
			}
			items, err := readAMSilences(data)
			if err != nil {
				return Exit(ExitUsage, fmt.Errorf("%s is not Alertmanager silence JSON (one silence or an array): %w", args[0], err))
			}
			c, err := app.client()
			if err != nil {
				return err
			}
			ns, err := app.namespace()
			if err != nil {
				return err
			}
			return importSilences(cmd.Context(), app, c, ns, items)
		},
	}
}

// importSilences creates each silence, going on past a failure, and fails
// at the end with the first failure's exit code.
func importSilences(ctx context.Context, app *App, c client.Client, ns string, items []amSilence) error {
	var first error
	failed := 0
	for i := range items {
		am := &items[i]
		what := fmt.Sprintf("silence %d", i+1)
		if am.ID != "" {
			what = "silence " + am.ID
		}
		s, skip, err := am.toSilence(ns, time.Now())
		switch {
		case skip:
			fmt.Fprintf(app.Out, "%s: skipped, already ended\n", what)
			continue
		case err != nil:
			err = Exit(ExitUsage, fmt.Errorf("%s: %w", what, err))
		default:
			err = c.Create(ctx, s)
		}
		switch {
		case apierrors.IsAlreadyExists(err):
			fmt.Fprintf(app.Out, "%s: silence/%s already imported\n", what, s.Name)
		case err != nil:
			fmt.Fprintf(app.Err, "error: %s: %v\n", what, err)
			failed++
			if first == nil {
				first = err
			}
		default:
			fmt.Fprintf(app.Out, "%s: silence/%s created, %s until %s\n", what, s.Name, silence.String(s.Spec.Matchers),
				s.Spec.EndsAt.UTC().Format(time.RFC3339))
		}
	}
	if first != nil {
		return Exit(ExitCode(first), fmt.Errorf("%d of %d silences were not imported (first: %w)", failed, len(items), first))
	}
	return nil
}
