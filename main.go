// Command alertbridge is the operator (alertbridge run) and its CLI; installed
// as kubectl-alertbridge it is also a kubectl plugin.
package main

import (
	"os"

	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/version"
)

func main() {
	root, app := cli.NewRoot()
	root.AddCommand(newRunCommand(app), newServeCommand(app), version.NewCommand())
	os.Exit(cli.Execute(root))
}
