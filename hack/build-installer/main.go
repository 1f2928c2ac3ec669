// Command build-installer writes dist/install.yaml (`make build-installer`):
// config/default as one file, with the image and namespace given.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alertbridge/alertbridge/internal/installer"
)

func main() {
	o := installer.Options{Root: "."}
	out := flag.String("o", "dist/install.yaml", "file to write")
	flag.StringVar(&o.Kustomization, "kustomization", "config/default", "kustomization to render, relative to the module root")
	flag.StringVar(&o.Image, "image", "", "the operator's image (NAME:TAG or NAME@DIGEST)")
	components := flag.String("components", "config/components/network-policy", "comma-separated kustomize components to add")
	flag.StringVar(&o.Namespace, "namespace", installer.DefaultNamespace, "namespace the operator runs in")
	flag.Parse()
	if *components != "" {
		o.Components = strings.Split(*components, ",")
	}
	data, err := installer.Build(o)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(*out), 0o750)
	}
	if err == nil {
		err = os.WriteFile(*out, data, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build-installer:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", *out)
}
