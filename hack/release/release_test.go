package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
)

// testVersion is a version no real release has; it has a pre-release
// part, so the chart's version keeps one too.
const testVersion = "v0.0.1-test.1"

// TestRelease runs `make release` into a temporary directory and checks
// every artifact. It cross-compiles four binaries: on a cold build cache
// that takes longer than go test's default 10 minutes (see
// docs/releasing.md), on a warm one a minute or two.
func TestRelease(t *testing.T) {
	root := moduleRootT(t)
	t.Run("refuses a missing or malformed VERSION", func(t *testing.T) {
		for _, args := range [][]string{{}, {"VERSION="}, {"VERSION=0.2.0"}, {"VERSION=v0.2"}, {"VERSION=v0.2.0+build.1"}} {
			out, err := runMake(t, root, args...)
			if err == nil || !strings.Contains(out, "make release: VERSION") {
				t.Errorf("make release %s: err %v, output:\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	if t.Failed() {
		return
	}

	dir := filepath.Join(t.TempDir(), "release")
	start := time.Now()
	out, err := runMake(t, root, "VERSION="+testVersion, "RELEASE_DIR="+dir)
	t.Logf("make release took %s:\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("make release: %v", err)
	}
	o := Options{Version: testVersion, ImageRepo: "ghcr.io/alertbridge/alertbridge"}

	sums := checkChecksums(t, dir)
	bins := checkArchives(t, root, dir, o)
	checkHostBinary(t, bins)
	checkBuildInfo(t, bins)
	checkChart(t, dir, o)
	checkInstaller(t, dir, o)
	checkKrew(t, dir, o, sums)
	checkSBOMs(t, dir, o)
}

func moduleRootT(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// runMake is `make -s release ARGS...` in root, with no VERSION or make
// flags from the environment (make test runs this test).
func runMake(t *testing.T, root string, args ...string) (string, error) {
	t.Helper()
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Fatal("make release needs make:", err)
	}
	cmd := exec.Command(mk, append([]string{"-s", "release"}, args...)...)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "VERSION", "RELEASE_DIR", "RELEASE_IMAGE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkChecksums checks that checksums.txt lists every other file of dir,
// each with its SHA-256, in sha256sum's format; and that sha256sum -c
// agrees where it is installed. It returns the sums by name.
func checkChecksums(t *testing.T, dir string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, Checksums))
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || strings.ContainsAny(name, "/ ") {
			t.Fatalf("%s: %q is not a sha256sum line", Checksums, sc.Text())
		}
		sums[name] = sum
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Name() == Checksums {
			continue
		}
		files = append(files, e.Name())
		if got, err := fileSHA256(filepath.Join(dir, e.Name())); err != nil || got != sums[e.Name()] {
			t.Errorf("%s: sha256 %s (%v), checksums.txt says %q", e.Name(), got, err, sums[e.Name()])
		}
	}
	if len(files) != len(sums) {
		t.Errorf("checksums.txt lists %d files, the directory holds %d: %v", len(sums), len(files), files)
	}
	if sha256sum, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(sha256sum, "--strict", "-c", Checksums)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}
	return sums
}

// checkArchives checks each archive holds alertbridge, the same binary
// as kubectl-alertbridge (executable both), and the LICENSE; and returns
// where each platform's alertbridge was extracted to.
func checkArchives(t *testing.T, root, dir string, o Options) map[Platform]string {
	t.Helper()
	license, err := fileSHA256(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	bins := map[Platform]string{}
	for _, p := range Platforms {
		dst := filepath.Join(t.TempDir(), p.OS+"_"+p.Arch)
		entries := extract(t, filepath.Join(dir, o.Archive(p)), dst)
		if got := slices.Sorted(maps.Keys(entries)); !slices.Equal(got, []string{"LICENSE", "alertbridge", PluginBin}) {
			t.Errorf("%s holds %v, want alertbridge, %s and LICENSE", o.Archive(p), got, PluginBin)
			continue
		}
		if entries["alertbridge"] != entries[PluginBin] {
			t.Errorf("%s: %s is not a copy of alertbridge", o.Archive(p), PluginBin)
		}
		if entries["LICENSE"] != license {
			t.Errorf("%s: LICENSE is not the module's", o.Archive(p))
		}
		bins[p] = dst
	}
	return bins
}

// extract writes archive's files into dst and returns each one's SHA-256
// by name. Binaries must be executable, other files readable.
func extract(t *testing.T, archive, dst string) map[string]string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return sums
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		want := int64(0o644)
		if hdr.Name != "LICENSE" {
			want = 0o755
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != want || strings.Contains(hdr.Name, "/") {
			t.Errorf("%s: %s: type %c mode %o, want a file at the top with mode %o", archive, hdr.Name, hdr.Typeflag, hdr.Mode, want)
		}
		out, err := os.OpenFile(filepath.Join(dst, filepath.Base(hdr.Name)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(hdr.Mode)&0o755)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(out, h), tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		sums[hdr.Name] = hex.EncodeToString(h.Sum(nil))
	}
}

// checkHostBinary runs the binary of this machine's platform: `version`
// says the release, and as kubectl-alertbridge it calls itself a kubectl
// plugin.
func checkHostBinary(t *testing.T, bins map[Platform]string) {
	t.Helper()
	dir, ok := bins[Platform{runtime.GOOS, runtime.GOARCH}]
	if !ok {
		t.Logf("no binary for %s/%s to run", runtime.GOOS, runtime.GOARCH)
		return
	}
	out, err := exec.Command(filepath.Join(dir, "alertbridge"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "alertbridge "+testVersion+" (commit ") {
		t.Errorf("alertbridge version: %v, output %q, want it to start with %q", err, out, "alertbridge "+testVersion+" (commit ")
	}
	out, err = exec.Command(filepath.Join(dir, PluginBin), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kubectl alertbridge [command]") {
		t.Errorf("%s --help: %v, output:\n%s", PluginBin, err, out)
	}
}

// checkBuildInfo reads every binary's build info with `go version -m`:
// the main module, the platform, no cgo. -trimpath keeps -ldflags out of
// the build info, so the version stamp is looked for in the binary itself.
func checkBuildInfo(t *testing.T, bins map[Platform]string) {
	t.Helper()
	for _, p := range Platforms {
		bin := filepath.Join(bins[p], "alertbridge")
		out, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Errorf("go version -m %s: %v", p, err)
			continue
		}
		info := map[string]bool{}
		for line := range strings.Lines(string(out)) {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				info[fields[0]+" "+fields[1]] = true
			}
		}
		for _, want := range []string{
			"path " + Module, "mod " + Module, "build CGO_ENABLED=0", "build GOOS=" + p.OS, "build GOARCH=" + p.Arch, "build -trimpath=true",
		} {
			if !info[want] {
				t.Errorf("%s: go version -m lacks %q:\n%s", p, want, out)
			}
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(testVersion)) {
			t.Errorf("%s: the binary does not hold the version %s", p, testVersion)
		}
	}
}

// checkChart loads the packaged chart as helm would.
func checkChart(t *testing.T, dir string, o Options) {
	t.Helper()
	ch, err := loader.Load(filepath.Join(dir, "alertbridge-"+o.ChartVersion()+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Version != "0.0.1-test.1" || ch.Metadata.AppVersion != testVersion {
		t.Errorf("chart version %q appVersion %q, want 0.0.1-test.1 and %s", ch.Metadata.Version, ch.Metadata.AppVersion, testVersion)
	}
	if repo, err := chartutil.Values(ch.Values).PathValue("image.repository"); err != nil || repo != o.ImageRepo {
		t.Errorf("chart's image.repository %v (%v), want %s", repo, err, o.ImageRepo)
	}
	if len(ch.Templates) == 0 || len(ch.CRDObjects()) == 0 {
		t.Errorf("chart has %d templates and %d CRDs", len(ch.Templates), len(ch.CRDObjects()))
	}
}

// checkInstaller checks that install.yaml runs the release's image.
func checkInstaller(t *testing.T, dir string, o Options) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	dec := yaml.NewDecoder(f)
	var images []string
	for {
		var obj struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Image string `yaml:"image"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("install.yaml: %v", err)
		}
		if obj.Kind == "Deployment" {
			for _, c := range obj.Spec.Template.Spec.Containers {
				images = append(images, c.Image)
			}
		}
	}
	if len(images) == 0 {
		t.Error("install.yaml has no Deployment with containers")
	}
	for _, img := range images {
		if img != o.Image() {
			t.Errorf("install.yaml runs %s, want %s", img, o.Image())
		}
	}
}

// checkKrew checks the krew manifest has one platform per archive, each
// with the archive's SHA-256.
func checkKrew(t *testing.T, dir string, o Options, sums map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, KrewManifest))
	if err != nil {
		t.Fatal(err)
	}
	var p krewPlugin
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" || p.Metadata.Name != "alertbridge" || p.Spec.Version != testVersion {
		t.Errorf("krew manifest: %s %s %s version %s", p.APIVersion, p.Kind, p.Metadata.Name, p.Spec.Version)
	}
	if len(p.Spec.Platforms) != len(Platforms) {
		t.Errorf("krew manifest has %d platforms, want %d", len(p.Spec.Platforms), len(Platforms))
	}
	for i, pl := range p.Spec.Platforms {
		want := Platforms[min(i, len(Platforms)-1)]
		archive := o.Archive(want)
		if l := pl.Selector.MatchLabels; len(l) != 2 || l["os"] != want.OS || l["arch"] != want.Arch {
			t.Errorf("krew platform %d selects %v, want %s", i, l, want)
		}
		if pl.URI != "https://github.com/alertbridge/alertbridge/releases/download/"+testVersion+"/"+archive {
			t.Errorf("krew platform %s: uri %s", want, pl.URI)
		}
		if sum, err := fileSHA256(filepath.Join(dir, archive)); err != nil || pl.SHA256 != sum || sum != sums[archive] {
			t.Errorf("krew platform %s: sha256 %s, the archive's is %s (%v)", want, pl.SHA256, sum, err)
		}
		if pl.Bin != PluginBin {
			t.Errorf("krew platform %s: bin %s", want, pl.Bin)
		}
	}
}

// checkSBOMs checks each binary's SBOM is CycloneDX JSON naming the main
// module at the release's version and the modules linked in, and none
// that are only the tests' or the tools'.
func checkSBOMs(t *testing.T, dir string, o Options) {
	t.Helper()
	for _, p := range Platforms {
		data, err := os.ReadFile(filepath.Join(dir, o.SBOM(p)))
		if err != nil {
			t.Fatal(err)
		}
		type component struct{ Name, Version string }
		var bom struct {
			BOMFormat   string `json:"bomFormat"`
			SpecVersion string `json:"specVersion"`
			Metadata    struct{ Component component }
			Components  []component
		}
		if err := json.Unmarshal(data, &bom); err != nil {
			t.Fatalf("%s: %v", o.SBOM(p), err)
		}
		if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
			t.Errorf("%s: bomFormat %q specVersion %q", o.SBOM(p), bom.BOMFormat, bom.SpecVersion)
		}
		if bom.Metadata.Component != (component{Module, testVersion}) {
			t.Errorf("%s: describes %v, want %s %s", o.SBOM(p), bom.Metadata.Component, Module, testVersion)
		}
		names := map[string]bool{}
		for _, c := range bom.Components {
			names[c.Name] = c.Version != ""
		}
		for _, m := range []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go", "github.com/spf13/cobra"} {
			if !names[m] {
				t.Errorf("%s: no versioned component %s", o.SBOM(p), m)
			}
		}
		for _, m := range []string{"helm.sh/helm/v3", "github.com/onsi/ginkgo/v2", "github.com/CycloneDX/cyclonedx-gomod"} {
			if _, ok := names[m]; ok {
				t.Errorf("%s: lists %s, which the binary does not link", o.SBOM(p), m)
			}
		}
	}
}
