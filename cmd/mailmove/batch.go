package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/term"

	"github.com/mailmove/mailmove/migrate"
)

// Job is one mailbox of a batch.
type Job struct {
	Line        int      `json:"line"`
	From        string   `json:"from"` // a URL with the user, or mbox:PATH
	To          string   `json:"to"`
	FromPassSrc string   `json:"-"` // file:PATH or command:CMD
	ToPassSrc   string   `json:"-"`
	Options     []string `json:"options,omitempty"` // more mailmove flags for this mailbox
}

// JobResult is a mailbox's outcome in the batch report.
type JobResult struct {
	Job
	State    string          `json:"state"`
	Exit     int             `json:"exit"`
	Outcome  string          `json:"outcome"`
	Error    string          `json:"error,omitempty"`
	Summary  migrate.Summary `json:"summary"`
	Duration time.Duration   `json:"duration_ns"`
}

// readJobs reads a batch file: CSV with a header naming the columns from,
// to, from_password, to_password and options (the last three optional).
// A password column holds file:PATH or command:CMD; options holds more
// flags, split at blanks. Lines starting with # are comments.
func readJobs(path string) ([]Job, error) {
	if strings.HasSuffix(path, ".toml") {
		return readJobsTOML(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("batch: %v", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment, r.FieldsPerRecord, r.TrimLeadingSpace = '#', -1, true
	var rows [][]string
	var lineOf []int // the file line of each row (comments are skipped)
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, usagef("batch %s: %v", path, err)
		}
		line, _ := r.FieldPos(0)
		rows, lineOf = append(rows, row), append(lineOf, line)
	}
	if len(rows) == 0 {
		return nil, usagef("batch %s: empty", path)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	if _, ok := col["from"]; !ok {
		return nil, usagef("batch %s: the first line must name the columns: from,to,from_password,to_password,options", path)
	}
	if _, ok := col["to"]; !ok {
		return nil, usagef("batch %s: no to column", path)
	}
	get := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	var jobs []Job
	for n, row := range rows[1:] {
		j := Job{Line: lineOf[n+1], From: get(row, "from"), To: get(row, "to"),
			FromPassSrc: get(row, "from_password"), ToPassSrc: get(row, "to_password"), Options: strings.Fields(get(row, "options"))}
		if j.From == "" && j.To == "" {
			continue
		}
		for _, src := range []string{j.FromPassSrc, j.ToPassSrc} {
			if src != "" && !strings.HasPrefix(src, "file:") && !strings.HasPrefix(src, "command:") {
				return nil, usagef("batch %s line %d: a password column holds file:PATH or command:CMD, never a password", path, j.Line)
			}
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// readJobsTOML reads the jobs of a config file: [[jobs]] tables with from,
// to, from_password, to_password and options (a list of flags).
func readJobsTOML(path string) ([]Job, error) {
	var file struct {
		Jobs []struct {
			From         string   `toml:"from"`
			To           string   `toml:"to"`
			FromPassword string   `toml:"from_password"`
			ToPassword   string   `toml:"to_password"`
			Options      []string `toml:"options"`
		} `toml:"jobs"`
	}
	md, err := toml.DecodeFile(path, &file)
	if err != nil {
		return nil, usagef("batch %s: %v", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return nil, usagef("batch %s: unknown setting %q", path, un[0].String())
	}
	var jobs []Job
	for i, j := range file.Jobs {
		for _, src := range []string{j.FromPassword, j.ToPassword} {
			if src != "" && !strings.HasPrefix(src, "file:") && !strings.HasPrefix(src, "command:") {
				return nil, usagef("batch %s job %d: a password holds file:PATH or command:CMD, never a password", path, i+1)
			}
		}
		jobs = append(jobs, Job{Line: i + 1, From: j.From, To: j.To, FromPassSrc: j.FromPassword, ToPassSrc: j.ToPassword, Options: j.Options})
	}
	if len(jobs) == 0 {
		return nil, usagef("batch %s: no [[jobs]]", path)
	}
	return jobs, nil
}

// parseShard reads K/N (1 ≤ K ≤ N).
func parseShard(s string) (k, n int, err error) {
	if s == "" {
		return 1, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 1 || k > n {
		return 0, 0, fmt.Errorf("want K/N with 1 <= K <= N, got %q", s)
	}
	return k, n, nil
}

// shardOf keeps the jobs of shard k of n: every n-th, from the k-th. The
// shards of one batch are disjoint and cover it.
func shardOf(jobs []Job, k, n int) []Job {
	var out []Job
	for i, j := range jobs {
		if i%n == k-1 {
			out = append(out, j)
		}
	}
	return out
}

// slots caps the connections a batch opens to each server, across jobs.
type slots struct {
	mu   sync.Mutex
	cond *sync.Cond
	used map[string]int
	max  int
}

func newSlots(max int) *slots {
	s := &slots{used: map[string]int{}, max: max}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// take waits until each server has a free slot, then takes them all at once
// (never one by one: two jobs could each hold what the other waits for).
func (s *slots) take(ctx context.Context, servers []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return false
		}
		if s.takeLocked(servers) {
			return true
		}
		s.cond.Wait()
	}
}

// tryTake takes the slots if they are free now, without waiting.
func (s *slots) tryTake(servers []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeLocked(servers)
}

func (s *slots) takeLocked(servers []string) bool {
	need := map[string]int{}
	for _, k := range servers {
		need[k]++ // a server named n times needs n slots
	}
	for k, n := range need {
		if s.used[k]+n > s.max {
			return false
		}
	}
	for _, k := range servers {
		s.used[k]++
	}
	return true
}

func (s *slots) give(servers []string) {
	s.mu.Lock()
	for _, k := range servers {
		s.used[k]--
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// batch runs `mailmove batch FILE`.
func batch(args []string, stdout, stderr io.Writer, ctx context.Context) int {
	fs := flag.NewFlagSet("mailmove batch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jobsN := fs.Int("jobs", 2, "mailboxes migrated at the same time")
	shard := fs.String("shard", "", "run only the K-th of N disjoint slices of the batch: K/N")
	maxConns := fs.Int("max-connections", 8, "connections per server at most, across all jobs (each job appends over its share less one)")
	report := fs.String("report", "", "write the batch report (JSON) to this file")
	stateDir := fs.String("state-dir", "", "directory of the mailboxes' state files (default $XDG_STATE_HOME/mailmove)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: mailmove batch FILE [flags] [-- flags for every mailbox]")
		fs.PrintDefaults()
	}
	if len(args) > 0 && isHelp(args[0]) {
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs.Usage()
		return exitUsage
	}
	file := args[0]
	rest, common := args[1:], []string(nil)
	if i := indexOf(rest, "--"); i >= 0 {
		rest, common = rest[:i], rest[i+1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	k, n, err := parseShard(*shard)
	if err != nil || *jobsN < 1 || *maxConns < 1 {
		fmt.Fprintln(stderr, "mailmove batch: --shard:", err, "(and --jobs, --max-connections must be 1 or more)")
		return exitUsage
	}
	jobs, err := readJobs(file)
	if err != nil {
		fmt.Fprintln(stderr, "mailmove", err)
		return exitUsage
	}
	jobs = shardOf(jobs, k, n)
	fmt.Fprintf(stdout, "mailmove batch: %d mailbox(es) (shard %d/%d), %d at a time, at most %d connection(s) per server\n", len(jobs), k, n, *jobsN, *maxConns)

	results := make([]JobResult, len(jobs))
	lines := newBoard(stdout, len(jobs))
	caps := newSlots(*maxConns)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *jobsN; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = runJob(ctx, jobs[i], common, *stateDir, caps, *jobsN, func(s string) { lines.set(i, s, false) })
				lines.set(i, fmt.Sprintf("line %d %s → %s: %s", jobs[i].Line, jobs[i].From, jobs[i].To, results[i].Outcome), true)
			}
		}()
	}
	for i := range jobs {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	lines.stop()

	code := exitOK
	fmt.Fprintf(stdout, "\n%-5s  %-59s  %-8s  %6s  %6s  %s\n", "LINE", "MAILBOX", "RESULT", "COPIED", "FAILED", "OUTCOME")
	for _, r := range results {
		if r.Line == 0 {
			continue // not started: interrupted
		}
		res := "ok"
		if r.Exit != exitOK {
			res = "exit " + strconv.Itoa(r.Exit)
			code = exitIncomplete
		}
		fmt.Fprintf(stdout, "%-5d  %-59s  %-8s  %6d  %6d  %s\n", r.Line, clipEnd(r.From, 28)+" → "+clipEnd(r.To, 28), res, r.Summary.Copied, r.Summary.Failed, r.Outcome)
	}
	if *report != "" {
		data, _ := json.MarshalIndent(map[string]any{"shard": *shard, "mailboxes": results}, "", "  ")
		if err := writePrivate(*report, append(data, '\n')); err != nil {
			fmt.Fprintln(stderr, "mailmove batch:", err)
			return exitFatal
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "mailmove batch: interrupted; state saved per mailbox: run the same command again to carry on")
		return exitInterrupted
	}
	return code
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// runJob migrates one mailbox with its own state and turns the outcome into
// the batch's words.
func runJob(ctx context.Context, j Job, common []string, stateDir string, caps *slots, jobs int, progress func(string)) JobResult {
	res := JobResult{Job: j}
	start := time.Now()
	err := migrateJob(ctx, &res, common, stateDir, caps, jobs, progress)
	res.Duration = time.Since(start)
	if res.Outcome != "" {
		return res // not run: finished earlier, or interrupted before its turn
	}
	var buf strings.Builder
	res.Exit = exitCode(&buf, res.Summary, err)
	res.Outcome = strings.TrimSpace(strings.ReplaceAll(strings.TrimPrefix(buf.String(), "mailmove: "), "\nmailmove: ", "; "))
	if err != nil {
		res.Error = err.Error()
	}
	if res.Outcome == "" {
		res.Outcome = fmt.Sprintf("copied %d, already there %d", res.Summary.Copied, res.Summary.AlreadyDone+res.Summary.Present+res.Summary.Duplicates)
	}
	return res
}

// migrateJob runs the migration of res.Job, unless its last run finished
// with nothing failed; it waits for a connection slot on each server.
func migrateJob(ctx context.Context, res *JobResult, common []string, stateDir string, caps *slots, jobs int, progress func(string)) error {
	j := res.Job
	from, err := endpointOf(j.From, j.FromPassSrc)
	if err != nil {
		return err
	}
	to, err := endpointOf(j.To, j.ToPassSrc)
	if err != nil {
		return err
	}
	res.State = stateFile(from, to)
	if stateDir != "" {
		res.State = filepath.Join(stateDir, filepath.Base(res.State))
	}
	if st, ok := readStatus(res.State); ok && !st.Running && st.Outcome == "finished" {
		res.Outcome, res.Exit = "done by an earlier run: not touched", exitOK
		return nil
	}
	// Each job appends over conns connections besides its main one, within
	// its share of the per-server cap.
	conns := appendConnections(4, caps.max/max(jobs, 1), to.Host)
	var servers []string
	for _, e := range []Endpoint{from, to} {
		if e.Type != "mbox" {
			servers = append(servers, strings.ToLower(e.addr()))
		}
	}
	for range conns {
		servers = append(servers, strings.ToLower(to.addr()))
	}
	sort.Strings(servers)
	label := fmt.Sprintf("line %d %s → %s", j.Line, j.From, j.To)
	if !caps.tryTake(servers) {
		progress(label + ": waiting for a connection slot")
		if !caps.take(ctx, servers) {
			res.Outcome, res.Exit = "not started: interrupted", exitInterrupted
			return nil
		}
	}
	defer caps.give(servers)
	m := &Main{Stdout: io.Discard, Stderr: io.Discard, batchJob: true}
	args := append(append([]string{"--from", "from", "--to", "to", "--state", res.State, "--quiet"}, common...), j.Options...)
	args = append(args, "--connections", strconv.Itoa(conns), "--max-connections", "0")
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	m.cfg.Endpoints = map[string]Endpoint{"from": from, "to": to}
	m.extraObserver = &jobProgress{prefix: label, set: progress}
	res.Summary, err = m.Run(ctx)
	return err
}

// endpointOf turns a batch column into an endpoint with its password source.
func endpointOf(v, passSrc string) (Endpoint, error) {
	var e Endpoint
	if path, ok := strings.CutPrefix(v, "mbox:"); ok {
		e = Endpoint{Type: "mbox", Path: path}
		return e, e.check()
	}
	e, err := parseURL(v)
	if err != nil {
		return e, usagef("%v", err)
	}
	switch {
	case strings.HasPrefix(passSrc, "file:"):
		e.PasswordFile = strings.TrimPrefix(passSrc, "file:")
	case strings.HasPrefix(passSrc, "command:"):
		e.PasswordCommand = strings.TrimPrefix(passSrc, "command:")
	}
	return e, nil
}

// jobProgress turns a job's events into its line on the board.
type jobProgress struct {
	prefix       string
	set          func(string)
	todo, seen   int
	copied, fail int
}

func (p *jobProgress) Planned(todo int, _ int64, done int) {
	p.todo = todo
	p.set(fmt.Sprintf("%s: %d to copy, %d done earlier", p.prefix, todo, done))
}

func (p *jobProgress) Message(ev migrate.Event) {
	switch ev.Action {
	case migrate.ActCopied:
		p.copied++
	case migrate.ActFailed:
		p.fail++
	}
	p.set(fmt.Sprintf("%s: %d/%d, copied %d, failed %d", p.prefix, p.seen, p.todo, p.copied, p.fail))
}

func (p *jobProgress) Note(string) {}

func (p *jobProgress) Progress(n int, _ int64) {
	p.seen = n
	p.set(fmt.Sprintf("%s: %d/%d, copied %d, failed %d", p.prefix, p.seen, p.todo, p.copied, p.fail))
}

// board shows one line per mailbox: redrawn in place on a terminal,
// otherwise printed when a line changes, at most every ten seconds each.
type board struct {
	mu      sync.Mutex
	w       io.Writer
	lines   []string
	printed []time.Time
	tty     bool
	drawn   int
	done    chan struct{}
}

func newBoard(w io.Writer, n int) *board {
	b := &board{w: w, lines: make([]string, n), printed: make([]time.Time, n), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b.tty = true
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-b.done:
					return
				case <-t.C:
					b.draw()
				}
			}
		}()
	}
	return b
}

func (b *board) set(i int, s string, final bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines[i] = s
	if !b.tty && (final || time.Since(b.printed[i]) >= 10*time.Second) {
		fmt.Fprintln(b.w, s)
		b.printed[i] = time.Now()
	}
}

func (b *board) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn > 0 {
		fmt.Fprintf(b.w, "\x1b[%dA", b.drawn)
	}
	b.drawn = 0
	for _, l := range b.lines {
		if l != "" {
			fmt.Fprintf(b.w, "\x1b[2K%s\n", clipRunes(l, 150))
			b.drawn++
		}
	}
}

func (b *board) stop() {
	close(b.done)
	if b.tty {
		b.draw()
	}
}

// clipEnd keeps the start of s (the scheme and the user, which tell one
// mailbox from the next), within n characters.
func clipEnd(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
