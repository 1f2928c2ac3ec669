package testenv

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestMakefileBuildsTheVersionsTestsRun: `make envtest` builds the control
// planes these constants name, so a version bump in one place cannot
// leave the tests looking for binaries nobody built.
func TestMakefileBuildsTheVersionsTestsRun(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(Root(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"K8S_VERSION": K8sVersion, "K8S_FLOOR_VERSION": FloorK8sVersion} {
		m := regexp.MustCompile(`(?m)^` + name + ` \?= (\S+)$`).FindSubmatch(mk)
		if m == nil {
			t.Errorf("the Makefile sets no %s", name)
			continue
		}
		if string(m[1]) != want {
			t.Errorf("the Makefile builds %s %s, the tests run %s", name, m[1], want)
		}
	}
}
