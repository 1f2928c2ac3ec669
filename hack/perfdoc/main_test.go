package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(page, "# Performance\n\nBefore.\n\n"+begin+"\nstale figures\n"+end+"\n\nAfter.\n")
	write(filepath.Join(results, "latest.md"), "# alertbridge benchmark, today (abc)\n\n| # | row |\n| --- | --- |\n| 1 | 42/s |\n")
	for range 2 { // a second run changes nothing
		if err := run(root); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(root, page))
		want := "# Performance\n\nBefore.\n\n" + begin + "\n\n### alertbridge benchmark, today (abc)\n\n" +
			"From [`test/bench/results/latest.md`](../test/bench/results/latest.md).\n\n| # | row |\n| --- | --- |\n| 1 | 42/s |\n\n" +
			end + "\n\nAfter.\n"
		if string(got) != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	}
	write(page, "# Performance\n\nno markers\n")
	if err := run(root); err == nil || !strings.Contains(err.Error(), "BEGIN generated") {
		t.Errorf("a page without markers: %v", err)
	}
}
