package cli_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/kube"
)

// TestABusyObjectExitsFive: a write that kept meeting conflicts after its
// retries ends in exit 5 with the advice to run the command again (docs/adr/conflict-retries.md).
func TestABusyObjectExitsFive(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "ops.alertbridge.io", Resource: "incidents"}, "inc-1", errors.New("the object has been modified"))
	err := fmt.Errorf("failed to update Incident prod/inc-1: %w", &kube.ContendedError{What: "Incident prod/inc-1", Attempts: 5, Err: conflict})
	if got := cli.ExitCode(err); got != cli.ExitUnreachable {
		t.Fatalf("exit %d, want %d", got, cli.ExitUnreachable)
	}
	if want := "try again in a moment"; !errors.As(err, new(*kube.ContendedError)) || !strings.Contains(err.Error(), want) {
		t.Fatalf("%q does not say %q", err, want)
	}
}
