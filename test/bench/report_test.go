package bench

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/alertbridge/alertbridge/test/e2e/shipped"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// row is one line of the table.
type row struct {
	ID, What, Result, Compared, Goal string
	// cmp, when set, is compared with a baseline once both of its
	// measurements (before and after the operator ran) are in.
	cmp *comparison
}

// comparison is a figure to set against a baseline: "value is 0.42× of
// base", and, when min > 0, the goal "≥ min× of base".
type comparison struct {
	value  float64
	base   string // a key of report.baselines
	label  string // how the table names the baseline, e.g. "of 1"
	min    float64
	metric string // the benchmark metric the ratio is reported as
}

// report is what a run measured and the machine it ran on.
type report struct {
	size    sizes
	rows    []row
	paths   []row
	notes   []string
	machine []string
	started time.Time
	load    []string
	commit  string
	// baselines are the raw ceilings and the upsert baseline, by key,
	// measured before the operator started and after it stopped.
	baselines map[string][]float64
	// partial names the measurements of a BENCH_ONLY run.
	partial string
	// stopped is the error that ended the run early; finished says the
	// report was written.
	stopped  string
	finished bool
	// ceilingNS holds the raw ceiling's Alerts until the operator runs.
	ceilingNS string
}

func newReport(s sizes) *report {
	return &report{size: s, started: time.Now(), baselines: map[string][]float64{}}
}

func (p *report) add(id, what, result, compared, goal string) {
	p.rows = append(p.rows, row{ID: id, What: what, Result: result, Compared: compared, Goal: goal})
}

// addVs adds a row whose figure is compared with a baseline at the end.
func (p *report) addVs(id, what, result string, c comparison) {
	p.rows = append(p.rows, row{ID: id, What: what, Result: result, cmp: &c})
}

// baseline records one measurement of a baseline.
func (p *report) baseline(key string, v float64) {
	p.baselines[key] = append(p.baselines[key], v)
}

// base is the mean of a baseline's measurements.
func (p *report) base(key string) float64 {
	var sum float64
	for _, v := range p.baselines[key] {
		sum += v
	}
	if len(p.baselines[key]) == 0 {
		return 0
	}
	return sum / float64(len(p.baselines[key]))
}

// both renders a baseline's measurements, e.g. "187 before, 150 after
// (mean 168)".
func (p *report) both(key, format string) string {
	vs := p.baselines[key]
	switch len(vs) {
	case 0:
		return "not measured"
	case 1:
		return fmt.Sprintf(format, vs[0])
	}
	return fmt.Sprintf(format+" before the operator started, "+format+" after it stopped (mean "+format+")", vs[0], vs[1], p.base(key))
}

// compare fills in the deferred comparisons.
func (p *report) compare(b interface{ ReportMetric(float64, string) }) {
	for i := range p.rows {
		c := p.rows[i].cmp
		if c == nil {
			continue
		}
		base := p.base(c.base)
		p.rows[i].Compared = ratio(c.value, base, c.label)
		if c.min > 0 {
			p.rows[i].Goal = goal(fmt.Sprintf("≥ %.2f× %s", c.min, c.label), base > 0 && c.value >= c.min*base)
		}
		if c.metric != "" && base > 0 {
			b.ReportMetric(c.value/base, c.metric)
		}
	}
}

// path records what one path costs the API server (the 8x rows).
func (p *report) path(what, result string) {
	p.paths = append(p.paths, row{ID: fmt.Sprintf("8%c", 'a'+len(p.paths)), What: "API requests per path: " + what, Result: result})
}

func (p *report) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	for _, m := range p.notes {
		if m == n {
			return
		}
	}
	p.notes = append(p.notes, n)
}

// goal renders a goal and whether the figure meets it.
func goal(text string, met bool) string {
	if met {
		return text + " — met"
	}
	return text + " — **not met**"
}

// ratio renders a/b as "0.42× of what".
func ratio(a, b float64, of string) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f× %s", a/b, of)
}

// describe records the machine, the versions and the settings.
func (p *report) describe(ctx context.Context, r *run) {
	out := func(name string, args ...string) string {
		b, err := exec.CommandContext(ctx, name, args...).Output() // #nosec G204 -- fixed commands
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		return strings.TrimSpace(string(b))
	}
	p.commit = out("git", "-C", testenv.Root(), "rev-parse", "--short=12", "HEAD")
	if out("git", "-C", testenv.Root(), "status", "--porcelain", "--untracked-files=no") != "" {
		p.commit += "-dirty"
	}
	kver := "unknown"
	if cs, err := kubernetes.NewForConfig(r.env.Control.Admin); err == nil {
		if v, err := cs.Discovery().ServerVersion(); err == nil {
			kver = v.GitVersion
		}
	}
	pg := map[string]string{}
	for _, s := range []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "max_connections"} {
		var v string
		if err := r.db.QueryRow(ctx, "SHOW "+s).Scan(&v); err != nil {
			v = err.Error()
		}
		pg[s] = v
	}
	c := r.env.ManagerContainer()
	p.machine = []string{
		"- date: " + p.started.UTC().Format(time.RFC3339),
		"- commit: " + p.commit,
		"- `uname -a`: " + out("uname", "-a"),
		"- CPU: " + cpuModel() + fmt.Sprintf(", %d cores (runtime.NumCPU)", runtime.NumCPU()),
		"- Go: " + runtime.Version(),
		"- kube-apiserver and etcd: " + kver + " (envtest binaries, one etcd member on the same host)",
		fmt.Sprintf("- PostgreSQL %s: fsync=%s, synchronous_commit=%s, full_page_writes=%s, max_connections=%s",
			pg["server_version"], pg["fsync"], pg["synchronous_commit"], pg["full_page_writes"], pg["max_connections"]),
		fmt.Sprintf("- operator: bin/alertbridge, %d replicas of the Deployment in %s, args `%s` (bind addresses replaced by loopback ports, plus --kubeconfig with the ServiceAccount's token)",
			ptrOr(r.env.Deployment.Spec.Replicas, 1), testenv.DefaultInstall, strings.Join(c.Args, " ")),
		fmt.Sprintf("- sizes: %d Alerts for the ceiling and →New, %d occurrences per storm level, %d Alerts per claim drain (Go), %d (CLI); long run: %t",
			p.size.Alerts, p.size.Storm, p.size.Claims, p.size.CLIClaims, p.size.Long),
	}
	p.load = append(p.load, loadavg())
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// markdown renders the whole report.
func (p *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# alertbridge benchmark, %s (%s)\n\n", p.started.UTC().Format("2006-01-02"), p.commit)
	b.WriteString(strings.Join(p.machine, "\n"))
	fmt.Fprintf(&b, "\n- load average (1, 5, 15 min) at start and end: %s — the machine is shared, so compare ratios measured in one run, not figures across runs\n", strings.Join(p.load, " → "))
	fmt.Fprintf(&b, "- duration: %s\n\n", time.Since(p.started).Round(time.Second))
	if p.partial != "" {
		fmt.Fprintf(&b, "**Partial run: BENCH_ONLY=%s.** Rows compared with a baseline that did not run are meaningless.\n\n", p.partial)
	}
	if p.stopped != "" {
		fmt.Fprintf(&b, "**The run stopped early:** %s. The rows it had not reached are missing, and the baselines were measured only once.\n\n", p.stopped)
	}
	b.WriteString(p.table())
	if len(p.notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range p.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

func (p *report) table() string {
	var b strings.Builder
	b.WriteString("| # | measurement | result | compared with | goal |\n| --- | --- | --- | --- | --- |\n")
	rows := slices.Clone(p.rows)
	slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range slices.Concat(rows, p.paths) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.ID, r.What, r.Result, orDash(r.Compared), orDash(r.Goal))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// finish prints the report and writes it to test/bench/results.
func (r *run) finish() {
	p := r.rep
	r.noteRefusals()
	r.baselineRows()
	p.compare(r.b)
	p.load = append(p.load, loadavg())
	md := p.markdown()
	fmt.Println()
	fmt.Println(md)
	dir := filepath.Join(testenv.Root(), "test", "bench", "results")
	r.check(os.MkdirAll(dir, 0o750))
	name := p.started.UTC().Format("2006-01-02") + "-" + p.commit
	if p.size.Long {
		name += "-long"
	}
	files := []string{name + ".md", map[bool]string{false: "latest.md", true: "latest-long.md"}[p.size.Long]}
	if p.partial != "" || p.stopped != "" {
		files = []string{name + "-partial.md"}
		name += "-partial"
	}
	p.finished = true
	for _, f := range files {
		r.check(os.WriteFile(filepath.Join(dir, f), []byte(md), 0o600))
	}
	r.say("wrote test/bench/results/%s.md", name)
}

// perUnit renders what a path cost the API server, per unit: writes by
// verb and resource (background writes aside), then reads and reviews.
func perUnit(q shipped.Requests, units float64) (string, float64) {
	q = q.Filter(func(r shipped.Request) bool { return !r.Background() })
	writes := q.Filter(shipped.Request.Write)
	reviews := q.Filter(shipped.Request.Review)
	reads := q.Filter(func(r shipped.Request) bool { return !r.Write() && !r.Review() && r.Verb != "WATCH" })
	w := writes.Total() / units
	parts := []string{}
	for _, k := range writes.ByKind() {
		if v := k.N / units; v >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k.Kind, v))
		}
	}
	s := fmt.Sprintf("**%.2f writes** (%s)", w, strings.Join(parts, ", "))
	if failed := writes.Filter(shipped.Request.Failed); failed.Total()/units >= 0.005 {
		codes := failed.ByCode()
		cparts := []string{}
		for _, c := range slices.Sorted(maps.Keys(codes)) {
			if v := codes[c] / units; v >= 0.005 {
				cparts = append(cparts, fmt.Sprintf("%.2f answered %s", v, c))
			}
		}
		s += " of which " + strings.Join(cparts, ", ")
	}
	if rd := reads.Total() / units; rd >= 0.005 {
		rparts := []string{}
		for _, k := range reads.ByKind() {
			if v := k.N / units; v >= 0.005 {
				rparts = append(rparts, fmt.Sprintf("%s %.2f", k.Kind, v))
			}
		}
		s += fmt.Sprintf("; %.2f reads (%s)", rd, strings.Join(rparts, ", "))
	}
	if rv := reviews.Total() / units; rv >= 0.005 {
		s += fmt.Sprintf("; %.2f token/access reviews", rv)
	}
	return s, w
}
