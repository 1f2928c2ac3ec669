package main

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestCheck(t *testing.T) {
	files := fstest.MapFS{
		"README.md": {Data: []byte("# alertbridge\n\nSee [install](docs/install.md#kubernetes-136-or-later), " +
			"[the API](docs/install.md#the-alertbridge-api), [again](docs/install.md#upgrades-1), [here](#alertbridge) " +
			"and ![shot](docs/images/dashboard.png).\n\n```sh\n[not a link](nowhere.md)\n```\n\n" +
			"Broken: [gone](docs/gone.md), [no anchor](docs/install.md#nope), [up](../outside.md).\n")},
		"docs/install.md":              {Data: []byte("# Install\n\n## Kubernetes 1.36 or later\n\n## The `alertbridge` API\n\n## Upgrades\n\n## Upgrades\n")},
		"docs/images/dashboard.png":    {Data: []byte("\x89PNG\x00")},
		"docs/migration.md":            {Data: []byte("# Migrating from the runbook's bridge\n")},
		"config/prometheus/rules.yaml": {Data: []byte("annotations:\n  runbook_url: https://example.com\n")},
		"internal/x.go":                {Data: []byte("// the runbook's claim\n// exempt (D9).\n// the D2 diagram, d1 := 1\n")},
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	got, err := check(files, names)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`README.md:9: link "docs/gone.md": docs/gone.md does not exist`,
		`README.md:9: link "docs/install.md#nope": docs/install.md has no heading with the anchor #nope`,
		`README.md:9: link "../outside.md" leaves the repository`,
		`internal/x.go:1: "runbook" names the design`,
		`internal/x.go:2: "(D9)" cites a decision by number`,
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no problem %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Kubernetes 1.36 or later":                        "kubernetes-136-or-later",
		"What the operator's ClusterRole allows, and why": "what-the-operators-clusterrole-allows-and-why",
		"Claims: agents working the queue":                "claims-agents-working-the-queue",
		"snake_case and kebab-case":                       "snake_case-and-kebab-case",
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}
