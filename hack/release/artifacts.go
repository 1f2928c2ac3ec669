package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
)

const (
	// Checksums is the file of every artifact's SHA-256.
	Checksums = "checksums.txt"
	// KrewManifest is the krew plugin manifest.
	KrewManifest = "alertbridge.yaml"
	// PluginBin is the binary's name as a kubectl plugin; the CLI names
	// itself "kubectl alertbridge" when called by it.
	PluginBin = "kubectl-alertbridge"
	// ReleaseURL is where the release's files are downloaded from.
	ReleaseURL = "https://github.com/alertbridge/alertbridge/releases/download"
	// chartDir is the chart under the module root (internal/chart.Dir).
	chartDir = "charts/alertbridge"
)

// writeArchive packs bin (as alertbridge and as kubectl-alertbridge) and
// license into dst, and returns dst's SHA-256. Entries carry date, mode
// and no owner, so the same binary gives the same archive.
func writeArchive(dst, bin, license string, date time.Time) (sum string, err error) {
	f, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	for _, e := range []struct {
		name, src string
		mode      int64
	}{{"alertbridge", bin, 0o755}, {PluginBin, bin, 0o755}, {"LICENSE", license, 0o644}} {
		if err := addFile(tw, e.name, e.src, e.mode, date); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func addFile(tw *tar.Writer, name, src string, mode int64, date time.Time) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size(), ModTime: date, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// writeChart packages charts/alertbridge into dir as `helm package
// --version --app-version` would, with the release's image repository as
// the default, and returns the file written.
func writeChart(root, dir string, o Options) (string, error) {
	ch, err := loader.Load(filepath.Join(root, chartDir))
	if err != nil {
		return "", err
	}
	ch.Metadata.Version = o.ChartVersion()
	ch.Metadata.AppVersion = o.Version
	for _, f := range ch.Raw {
		if f.Name != chartutil.ValuesfileName {
			continue
		}
		if f.Data, err = setImageRepo(f.Data, o.ImageRepo); err != nil {
			return "", err
		}
		if ch.Values, err = chartutil.ReadValues(f.Data); err != nil {
			return "", err
		}
	}
	if err := ch.Validate(); err != nil {
		return "", err
	}
	return chartutil.Save(ch, dir)
}

// imageRepoRE is image.repository in values.yaml: the first repository
// key in the indented block under the top-level image key.
var imageRepoRE = regexp.MustCompile(`(?m)^image:\n(?:[ \t]+.*\n|\n)*?  repository: *(\S*)[ \t]*$`)

// setImageRepo sets image.repository in values.yaml to repo, as text, so
// the file keeps its comments (chartutil.Save writes values.yaml as read).
func setImageRepo(values []byte, repo string) ([]byte, error) {
	m := imageRepoRE.FindSubmatchIndex(values)
	if m == nil {
		return nil, fmt.Errorf("%s/values.yaml: no image.repository to set", chartDir)
	}
	out := bytes.Join([][]byte{values[:m[2]], []byte(repo), values[m[3]:]}, nil)
	v, err := chartutil.ReadValues(out)
	if err != nil {
		return nil, err
	}
	if got, _ := v.PathValue("image.repository"); got != repo {
		return nil, fmt.Errorf("%s/values.yaml: image.repository is %v after setting it to %s", chartDir, got, repo)
	}
	return out, nil
}

// Krew's Plugin (krew.googlecontainertools.github.com/v1alpha2), as much
// of it as the manifest uses.
type (
	krewPlugin struct {
		APIVersion string       `yaml:"apiVersion"`
		Kind       string       `yaml:"kind"`
		Metadata   krewMetadata `yaml:"metadata"`
		Spec       krewSpec     `yaml:"spec"`
	}
	krewMetadata struct {
		Name string `yaml:"name"`
	}
	krewSpec struct {
		Version          string         `yaml:"version"`
		Homepage         string         `yaml:"homepage"`
		ShortDescription string         `yaml:"shortDescription"`
		Description      string         `yaml:"description"`
		Platforms        []krewPlatform `yaml:"platforms"`
	}
	krewPlatform struct {
		Selector krewSelector `yaml:"selector"`
		URI      string       `yaml:"uri"`
		SHA256   string       `yaml:"sha256"`
		Files    []krewFile   `yaml:"files"`
		Bin      string       `yaml:"bin"`
	}
	krewSelector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	krewFile struct {
		From string `yaml:"from"`
		To   string `yaml:"to"`
	}
)

const krewDescription = `The alertbridge CLI as a kubectl plugin: list, claim and acknowledge
Alerts, open and resolve Incidents, manage Silences, read SLO error
budgets and ask the release gate (kubectl alertbridge release-check).
It works against a cluster where the alertbridge operator is installed.
`

// writeKrewManifest writes a krew Plugin with one platform per archive;
// sums holds each archive's SHA-256 by name.
func writeKrewManifest(dst string, o Options, sums map[string]string) error {
	p := krewPlugin{
		APIVersion: "krew.googlecontainertools.github.com/v1alpha2",
		Kind:       "Plugin",
		Metadata:   krewMetadata{Name: "alertbridge"},
		Spec: krewSpec{
			Version:          o.Version,
			Homepage:         "https://github.com/alertbridge/alertbridge",
			ShortDescription: "Alerts, incidents, silences and SLO release gates",
			Description:      krewDescription,
		},
	}
	for _, pl := range Platforms {
		name := o.Archive(pl)
		sum, ok := sums[name]
		if !ok {
			return fmt.Errorf("no checksum of %s", name)
		}
		p.Spec.Platforms = append(p.Spec.Platforms, krewPlatform{
			Selector: krewSelector{MatchLabels: map[string]string{"os": pl.OS, "arch": pl.Arch}},
			URI:      ReleaseURL + "/" + o.Version + "/" + name,
			SHA256:   sum,
			// The plugin needs only its own name of the binary.
			Files: []krewFile{{From: PluginBin, To: "."}, {From: "LICENSE", To: "."}},
			Bin:   PluginBin,
		})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}

// writeChecksums writes checksums.txt in dir: `sha256sum` of every other
// file there, by name.
func writeChecksums(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, e := range entries { // sorted by name
		if !e.Type().IsRegular() || e.Name() == Checksums {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&buf, "%s  %s\n", sum, e.Name())
	}
	fmt.Println("wrote", Checksums)
	return os.WriteFile(filepath.Join(dir, Checksums), buf.Bytes(), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
