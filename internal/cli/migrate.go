package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/alertbridge/alertbridge/internal/mirror"
)

// NewMigrateCommand is `alertbridge migrate [--dsn …] [--dry-run]`: apply
// the mirror's pending schema migrations. Re-running it is a no-op.
func NewMigrateCommand(app *App) *cobra.Command {
	var dsnFlag, reader string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the PostgreSQL mirror's schema migrations (idempotent)",
		Long: "Apply the pending, versioned schema migrations of the PostgreSQL mirror in one\n" +
			"transaction under an advisory lock. Re-running is a no-op; --dry-run prints the\n" +
			"SQL it would run and changes nothing. The database is --dsn, else\n" +
			"$ALERT_DATABASE_URL, else $DATABASE_URL. --grant-read-to ROLE then lets an\n" +
			"existing role read every table (now and after later migrations) and nothing\n" +
			"more: the role the HTTP API reads history with.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn, _ := mirror.ResolveDSN(dsnFlag, os.Getenv)
			if dsn == "" {
				return Exit(ExitUsage, errors.New("no database: pass --dsn or set ALERT_DATABASE_URL or DATABASE_URL"))
			}
			ctx := cmd.Context()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return Exit(ExitUnreachable, fmt.Errorf("failed to connect to the database: %w", err))
			}
			defer func() { _ = conn.Close(ctx) }()
			applied, err := mirror.Migrate(ctx, conn, mirror.MigrateOptions{DryRun: dryRun, Out: app.Out})
			if err != nil {
				return err
			}
			if !dryRun && len(applied) == 0 {
				_, _ = fmt.Fprintln(app.Out, "the schema is current; nothing to do")
			}
			if reader != "" && !dryRun {
				if err := mirror.GrantRead(ctx, conn, reader); err != nil {
					return err
				}
				_, _ = fmt.Fprintf(app.Out, "role %s may read the mirror\n", reader)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dsnFlag, "dsn", "", "PostgreSQL URL (default $ALERT_DATABASE_URL, then $DATABASE_URL)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the SQL that would run and change nothing")
	cmd.Flags().StringVar(&reader, "grant-read-to", "", "an existing PostgreSQL role that may then SELECT from the mirror's tables, and nothing more (the HTTP API's history reader)")
	return cmd
}
