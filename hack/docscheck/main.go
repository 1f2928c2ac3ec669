// Command docscheck is the documentation check of `make verify`:
//
//   - every relative link and image in the repository's Markdown resolves:
//     the file or directory exists and, for a #fragment into Markdown, a
//     heading (or an explicit anchor) of that name exists, named as a
//     code-hosting site names heading anchors;
//   - no tracked file speaks of documents that are not part of alertbridge:
//     the design brief the project started from, its decision list, or
//     the person-named agents of the system it replaces. docs/migration.md
//     alone may name the replaced design, and Prometheus' runbook_url
//     annotation is a standard name.
//
// It prints one line per problem, file:line first, and exits 1 if there
// is any.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
)

// migrationPage is the one page that may name the design alertbridge
// replaces.
const migrationPage = "docs/migration.md"

// immutable are lines that may not change whatever they say: a migration
// already applied is checksummed in every database it ran on, and
// `alertbridge migrate` refuses a database whose applied SQL was edited.
var immutable = map[string]string{
	"internal/mirror/migrations/0001_tables.sql": "-- By service/env, the runbook's list filters.",
}

// self is this checker: its sources and fixtures hold the words it looks for.
const self = "hack/docscheck/"

func main() {
	files, err := trackedFiles()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	problems, err := check(os.DirFS(".").(fs.ReadFileFS), files)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Printf("docscheck: %d problems\n", len(problems))
		os.Exit(1)
	}
}

// trackedFiles are the files git tracks or would track (new files not
// ignored), relative to the repository root.
func trackedFiles() ([]string, error) {
	out, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	var files []string
	for f := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f != "" {
			files = append(files, filepath.ToSlash(f))
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// check returns the problems of files (paths relative to root).
func check(root fs.ReadFileFS, files []string) ([]string, error) {
	exists := map[string]bool{}
	for _, f := range files {
		exists[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			exists[d] = true
		}
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(f string) (map[string]bool, error) {
		if a, ok := anchors[f]; ok {
			return a, nil
		}
		src, err := root.ReadFile(f)
		if err != nil {
			return nil, err
		}
		a := headingAnchors(src)
		anchors[f] = a
		return a, nil
	}

	var problems []string
	for _, f := range files {
		if strings.HasPrefix(f, self) {
			continue
		}
		src, err := root.ReadFile(f)
		if err != nil {
			// A file deleted but not yet staged is not there to check.
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		if bytes.IndexByte(src, 0) >= 0 || strings.HasSuffix(f, ".sum") {
			continue
		}
		problems = append(problems, wording(f, src)...)
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		for _, l := range links(src) {
			p, err := checkLink(f, l, exists, anchorsOf)
			if err != nil {
				return nil, err
			}
			if p != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: %s", f, l.line, p))
			}
		}
	}
	return problems, nil
}

// forbidden are the words no tracked file may use, each with why. A match
// whose first group matched is an allowed use.
var forbidden = []struct {
	re  *regexp.Regexp
	why string
	// onMigrationPage: the migration page may use it.
	onMigrationPage bool
}{
	{regexp.MustCompile(`(?i)runbook(_url)?`), "names the design alertbridge replaces: only " + migrationPage + " may (runbook_url, Prometheus' annotation, is fine)", true},
	{regexp.MustCompile(`\bDECISIONS\b`), "cites a decision list that is not part of alertbridge: record the decision in docs/adr/ and link it", false},
	{regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])D[0-9]{1,2}(?:[;:),]|\s*\))`), "cites a decision by number: record it in docs/adr/ and link it, or say the reason", false},
	{regexp.MustCompile(`(?i)\bsofiia\b|\bNODA[0-9]\b`), "names an agent or host of the system alertbridge replaces", false},
	{regexp.MustCompile(`shared/seed|\.\./shared/`), "points outside the repository", false},
}

func wording(f string, src []byte) []string {
	var problems []string
	for i, line := range strings.Split(string(src), "\n") {
		if immutable[f] == line {
			continue
		}
		for _, w := range forbidden {
			if f == migrationPage && w.onMigrationPage {
				continue
			}
			for _, m := range w.re.FindAllStringSubmatch(line, -1) {
				if len(m) > 1 && m[1] != "" {
					continue
				}
				problems = append(problems, fmt.Sprintf("%s:%d: %q %s", f, i+1, strings.TrimSpace(m[0]), w.why))
				break
			}
		}
	}
	return problems
}

type link struct {
	dest string
	line int
}

var md = goldmark.New(goldmark.WithExtensions(extension.GFM))

// htmlRef finds the targets of raw HTML in Markdown (<img src>, <a href>).
var htmlRef = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)

// links are the destinations of every link and image of a Markdown file,
// with their lines; code blocks and code spans are not links.
func links(src []byte) []link {
	doc := md.Parser().Parse(text.NewReader(src))
	var out []link
	lineOf := func(n ast.Node) int {
		for ; n != nil; n = n.Parent() {
			if n.Type() == ast.TypeBlock && n.Lines().Len() > 0 {
				return bytes.Count(src[:n.Lines().At(0).Start], []byte("\n")) + 1
			}
			if t, ok := n.(*ast.Text); ok {
				return bytes.Count(src[:t.Segment.Start], []byte("\n")) + 1
			}
		}
		return 0
	}
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Link:
			out = append(out, link{string(n.Destination), lineOf(firstText(n))})
		case *ast.Image:
			out = append(out, link{string(n.Destination), lineOf(firstText(n))})
		case *ast.HTMLBlock:
			for i := range n.Lines().Len() {
				seg := n.Lines().At(i)
				for _, m := range htmlRef.FindAllSubmatch(seg.Value(src), -1) {
					out = append(out, link{string(m[1]), bytes.Count(src[:seg.Start], []byte("\n")) + 1})
				}
			}
		case *ast.RawHTML:
			for i := range n.Segments.Len() {
				seg := n.Segments.At(i)
				for _, m := range htmlRef.FindAllSubmatch(seg.Value(src), -1) {
					out = append(out, link{string(m[1]), bytes.Count(src[:seg.Start], []byte("\n")) + 1})
				}
			}
		}
		return ast.WalkContinue, nil
	})
	return out
}

// firstText is n's first text descendant (its position is n's line), or n.
func firstText(n ast.Node) ast.Node {
	var found ast.Node
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if _, ok := c.(*ast.Text); ok && entering {
			found = c
			return ast.WalkStop, nil
		}
		return ast.WalkContinue, nil
	})
	if found == nil {
		return n.Parent()
	}
	return found
}

// checkLink says what is wrong with l in file f, "" if nothing.
func checkLink(f string, l link, exists map[string]bool, anchorsOf func(string) (map[string]bool, error)) (string, error) {
	u, err := url.Parse(l.dest)
	if err != nil {
		return fmt.Sprintf("link %q does not parse: %v", l.dest, err), nil
	}
	if u.Scheme != "" || u.Host != "" || l.dest == "" {
		return "", nil
	}
	target := f
	if u.Path != "" {
		if strings.HasPrefix(u.Path, "/") {
			return fmt.Sprintf("link %q is absolute: use a path relative to %s", l.dest, f), nil
		}
		target = path.Clean(path.Join(path.Dir(f), u.Path))
		if strings.HasPrefix(target, "../") || target == ".." {
			return fmt.Sprintf("link %q leaves the repository", l.dest), nil
		}
		if !exists[target] {
			return fmt.Sprintf("link %q: %s does not exist", l.dest, target), nil
		}
	}
	if u.Fragment == "" || !strings.HasSuffix(target, ".md") {
		return "", nil
	}
	a, err := anchorsOf(target)
	if err != nil {
		return "", err
	}
	if !a[u.Fragment] {
		return fmt.Sprintf("link %q: %s has no heading with the anchor #%s", l.dest, target, u.Fragment), nil
	}
	return "", nil
}

// explicitAnchor finds <a name="…"> and id="…" anchors written by hand.
var explicitAnchor = regexp.MustCompile(`(?i)<a\s+(?:name|id)\s*=\s*"([^"]+)"`)

// headingAnchors are the anchors a code-hosting site gives a Markdown
// file's headings (GitHub's rule: lower case, punctuation but '-' and '_'
// dropped, spaces to '-', repeats suffixed -1, -2, …), plus explicit ones.
func headingAnchors(src []byte) map[string]bool {
	doc := md.Parser().Parse(text.NewReader(src))
	out := map[string]bool{}
	seen := map[string]int{}
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		h, ok := n.(*ast.Heading)
		if !ok || !entering {
			return ast.WalkContinue, nil
		}
		slug := Slug(plainText(h, src))
		if k := seen[slug]; k > 0 {
			out[fmt.Sprintf("%s-%d", slug, k)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
		return ast.WalkSkipChildren, nil
	})
	for _, m := range explicitAnchor.FindAllSubmatch(src, -1) {
		out[string(m[1])] = true
	}
	return out
}

// plainText is the text of a heading as rendered: code spans' text
// included, emphasis and link markup dropped.
func plainText(n ast.Node, src []byte) string {
	var b strings.Builder
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Segment.Value(src))
			if c.SoftLineBreak() {
				b.WriteByte(' ')
			}
		case *ast.String:
			b.Write(c.Value)
		case *ast.RawHTML:
			return ast.WalkSkipChildren, nil
		}
		return ast.WalkContinue, nil
	})
	return b.String()
}

// Slug is the anchor of a heading whose text is s.
func Slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
