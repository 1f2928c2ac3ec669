// Command release writes the artifacts of one release into a directory
// (`make release VERSION=v1.2.3`, into dist/release/v1.2.3):
//
//   - alertbridge_<VERSION>_<os>_<arch>.tar.gz for each of Platforms: the
//     binary (CGO_ENABLED=0, version and commit stamped as `make build`
//     does), the same binary as kubectl-alertbridge, and LICENSE;
//   - alertbridge_<VERSION>_<os>_<arch>.sbom.cdx.json: a CycloneDX SBOM of
//     the modules linked into that binary (cyclonedx-gomod, a tool of this
//     module);
//   - alertbridge-<VERSION without v>.tgz: charts/alertbridge with version
//     and appVersion set, and the image repository of the release;
//   - install.yaml: config/default as one file for the release's image
//     (hack/build-installer);
//   - alertbridge.yaml: a krew plugin manifest for the archives;
//   - checksums.txt: the SHA-256 of every other file, in sha256sum's format.
//
// It builds the binaries one after another: a cross-compile on a cold
// build cache takes minutes, and two at once only compete for the cores.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Module is the main module, whose root package is the binary.
const Module = "github.com/alertbridge/alertbridge"

// Platform is one os/arch a release ships a binary for.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the release's binaries, in the order they are built.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// semverRE is a release version: v, then major.minor.patch, and an
// optional pre-release (v1.2.3-rc.1). Build metadata (+...) is refused:
// image tags cannot hold a +. The Makefile's release target checks the same.
var semverRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// Options is what one release is made of.
type Options struct {
	// Version is the release, v1.2.3.
	Version string
	// Commit is stamped into the binaries beside Version.
	Commit string
	// ImageRepo is the operator's image without tag; the release's image
	// is ImageRepo:Version.
	ImageRepo string
	// Namespace is the namespace install.yaml puts the operator in.
	Namespace string
	// Out is the directory the artifacts go to.
	Out string
	// Date is the modification time of the archives' entries, so that
	// the same commit gives the same archives.
	Date time.Time
}

// Image is the operator's image of the release.
func (o Options) Image() string { return o.ImageRepo + ":" + o.Version }

// ChartVersion is the chart's version: Version without its v.
func (o Options) ChartVersion() string { return strings.TrimPrefix(o.Version, "v") }

// Archive is the name of the archive of p.
func (o Options) Archive(p Platform) string {
	return fmt.Sprintf("alertbridge_%s_%s_%s.tar.gz", o.Version, p.OS, p.Arch)
}

// SBOM is the name of the SBOM of p's binary.
func (o Options) SBOM(p Platform) string {
	return fmt.Sprintf("alertbridge_%s_%s_%s.sbom.cdx.json", o.Version, p.OS, p.Arch)
}

func main() {
	var o Options
	date := flag.Int64("date", 0, "modification time of the archives' entries, in seconds since 1970 (e.g. the commit's time)")
	flag.StringVar(&o.Version, "version", "", "the release's version, v1.2.3 (required)")
	flag.StringVar(&o.Commit, "commit", "unknown", "the commit stamped into the binaries")
	flag.StringVar(&o.ImageRepo, "image-repo", "ghcr.io/alertbridge/alertbridge", "the operator's image, without tag (the tag is the version)")
	flag.StringVar(&o.Namespace, "namespace", "alertbridge-system", "the namespace install.yaml puts the operator in")
	flag.StringVar(&o.Out, "o", "", "directory to write the artifacts to (default dist/release/VERSION)")
	flag.Parse()
	o.Date = time.Unix(*date, 0).UTC()
	if o.Out == "" {
		o.Out = filepath.Join("dist", "release", o.Version)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(o Options) error {
	if !semverRE.MatchString(o.Version) {
		return fmt.Errorf("version %q is not a semantic version like v1.2.3 (or v1.2.3-rc.1)", o.Version)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return err
	}
	// Written to a sibling first, and moved into place whole at the end:
	// a failed run leaves no directory that looks like a release.
	partial := o.Out + ".partial"
	if err := checkReplaceable(o.Out); err != nil {
		return err
	}
	if err := os.RemoveAll(partial); err != nil {
		return err
	}
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "alertbridge-release-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	start := time.Now()
	if err := writeArtifacts(root, work, partial, o); err != nil {
		return err
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return err
	}
	if err := os.Rename(partial, o.Out); err != nil {
		return err
	}
	fmt.Printf("release %s: %s in %s\n", o.Version, o.Out, time.Since(start).Round(time.Second))
	return nil
}

func writeArtifacts(root, work, dir string, o Options) error {
	sums := map[string]string{}
	for _, p := range Platforms {
		if err := writePlatform(root, work, dir, o, p, sums); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	chartFile, err := writeChart(root, dir, o)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	fmt.Println("wrote", filepath.Base(chartFile))
	if err := writeInstaller(root, dir, o); err != nil {
		return fmt.Errorf("install.yaml: %w", err)
	}
	if err := writeKrewManifest(filepath.Join(dir, KrewManifest), o, sums); err != nil {
		return fmt.Errorf("krew manifest: %w", err)
	}
	fmt.Println("wrote", KrewManifest)
	return writeChecksums(dir)
}

// writePlatform builds p's binary, packs it and writes its SBOM; sums
// gets the archive's SHA-256 under its name.
func writePlatform(root, work, dir string, o Options, p Platform, sums map[string]string) error {
	start := time.Now()
	bin := filepath.Join(work, p.OS+"_"+p.Arch, "alertbridge")
	if err := build(root, bin, o, p); err != nil {
		return err
	}
	built := time.Since(start).Round(time.Second)
	archive := filepath.Join(dir, o.Archive(p))
	sum, err := writeArchive(archive, bin, filepath.Join(root, "LICENSE"), o.Date)
	if err != nil {
		return err
	}
	sums[o.Archive(p)] = sum
	if err := writeSBOM(root, filepath.Join(dir, o.SBOM(p)), bin, o); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s (built in %s)\n", o.Archive(p), o.SBOM(p), built)
	return nil
}

// build is `make build` for p: CGO_ENABLED=0 and the same -X stamps, plus
// -trimpath (no paths of this machine in the binary) and -s -w (no symbol
// table or DWARF: a third smaller; `go version -m` still reads it).
func build(root, bin string, o Options, p Platform) error {
	ldflags := strings.Join([]string{
		"-s", "-w",
		"-X", Module + "/internal/version.version=" + o.Version,
		"-X", Module + "/internal/version.commit=" + o.Commit,
	}, " ")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	return runCmd(cmd)
}

// writeSBOM describes the modules linked into bin, as its build info
// records them: what was shipped, not what go.mod lists (test and tool
// dependencies are not in it).
func writeSBOM(root, dst, bin string, o Options) error {
	cmd := exec.Command("go", "tool", "cyclonedx-gomod", "bin", "-json", "-version", o.Version, "-output", dst, bin)
	cmd.Dir = root
	return runCmd(cmd)
}

// writeInstaller is `make build-installer` for the release's image.
func writeInstaller(root, dir string, o Options) error {
	dst := filepath.Join(dir, "install.yaml")
	cmd := exec.Command("go", "run", "./hack/build-installer", "-o", dst, "-image", o.Image(), "-namespace", o.Namespace)
	cmd.Dir = root
	cmd.Stdout = io.Discard // it says where it wrote: in the .partial directory
	if err := runCmd(cmd); err != nil {
		return err
	}
	fmt.Println("wrote install.yaml")
	return os.Chmod(dst, 0o644) // readable as the other artifacts are
}

// runCmd runs cmd, its errors going to ours, and its output too unless
// cmd.Stdout is set.
func runCmd(cmd *exec.Cmd) error {
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return nil
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the alertbridge module: run from its checkout")
	}
	return filepath.Dir(gomod), nil
}

// checkReplaceable refuses to replace a directory that is neither absent,
// empty, nor an earlier release (one with a checksums.txt).
func checkReplaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, Checksums)); err != nil {
		return fmt.Errorf("%s holds files but no %s: not replacing what is not an earlier release", dir, Checksums)
	}
	return nil
}
