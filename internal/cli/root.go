// Package cli is alertbridge's command line: the alerts, incidents,
// silences, slo, release-check and migrate commands, usable as
// `kubectl alertbridge …`. It reads the usual kubectl flags and calls the
// libraries in internal/.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Exit codes; scripts depend on them.
const (
	ExitOK          = 0
	ExitUsage       = 1
	ExitNothing     = 2
	ExitNotHolder   = 3
	ExitBlocked     = 4
	ExitUnreachable = 5
	ExitNotFound    = 6
	ExitForbidden   = 7
)

// ExitError carries the exit code a command ends with.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err so the process ends with code.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// App is what every command shares: the kubectl flags and the output streams.
type App struct {
	Kube *genericclioptions.ConfigFlags
	Out  io.Writer
	Err  io.Writer
}

// NewRoot builds the root command. Called as kubectl-alertbridge it names
// itself the way kubectl shows plugins.
func NewRoot() (*cobra.Command, *App) {
	app := &App{Kube: genericclioptions.NewConfigFlags(true), Out: os.Stdout, Err: os.Stderr}
	root := &cobra.Command{
		Use:           "alertbridge",
		Short:         "Alerts, incidents and release gates as Kubernetes resources",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") {
		// Not in Use: cobra names a command by Use's first word, which
		// would make the help say "kubectl [command]".
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl alertbridge"}
	}
	app.Kube.AddFlags(root.PersistentFlags())
	root.AddCommand(newIncidentsCommand(app))
	root.AddCommand(newSLOCommand(app), newReleaseCheckCommand(app))
	root.SetOut(app.Out)
	root.SetErr(app.Err)
	root.AddCommand(newAlertsCommand(app))
	root.AddCommand(NewMigrateCommand(app))
	root.AddCommand(newDashboardCommand(app))
	root.AddCommand(newSilencesCommand(app))
	root.AddCommand(newWebhookSinkCommand(app))
	return root, app
}

// Execute runs root and maps its error to an exit code.
func Execute(root *cobra.Command) int {
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(root.ErrOrStderr(), "error:", err)
	return ExitCode(err)
}

// ExitCode maps an error to the documented exit codes.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case apierrors.IsNotFound(err):
		return ExitNotFound
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return ExitForbidden
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		return ExitUsage
	case apierrors.IsConflict(err):
		// A write that kept meeting conflicts after its retries
		// (kube.ContendedError): the object is busy, try again.
		return ExitUnreachable
	case isUnreachable(err):
		return ExitUnreachable
	}
	return ExitUsage
}

func isUnreachable(err error) bool {
	if apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "i/o timeout", "dial tcp", "context deadline exceeded"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
