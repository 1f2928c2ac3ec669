package version

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/alertbridge/alertbridge", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "4504aab0123456789abcdef0123456789abcdef0"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"stamped wins", "v0.3.0", "abc1234", vcs, Info{"v0.3.0", "abc1234", "go1.26.0"}},
		{"build info fills in", "", "", vcs, Info{"(devel)", "4504aab01234+dirty", "go1.26.0"}},
		{"go install of a tag", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.0"}}, Info{"v0.3.0", "unknown", "go1.26.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.version, tc.commit, tc.bi); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := resolve("", "", nil); got.Version != "(devel)" || got.Commit != "unknown" || got.GoVersion == "" {
		t.Fatalf("without build info: %+v", got)
	}
}

func TestCommand(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCommand()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"-o", "json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got Info
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if got != Get() {
		t.Fatalf("printed %+v, want %+v", got, Get())
	}
	out.Reset()
	cmd = NewCommand()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "alertbridge "+Get().Version) {
		t.Fatalf("printed %q", out.String())
	}
}
