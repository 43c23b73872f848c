package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailmove/mailmove/migrate"
)

// observers assembles what the user sees from the command line's choices and
// returns a function that closes them with the final summary.
func (m *Main) observers() (migrate.Observer, func(migrate.Summary, error) error, error) {
	var obs multi
	var closers []func(migrate.Summary) error
	if m.reportPath != "" {
		rep, err := newReport(m.reportPath)
		if err != nil {
			return nil, nil, err
		}
		obs = append(obs, rep)
		closers = append(closers, rep.close)
	}
	// Lines written to stderr while the bar is drawn there clear it first,
	// so that no line is written over the bar's.
	var stderr io.Writer = m.Stderr
	var bar *progress
	if !m.quiet && !m.dryRun {
		bar = newProgress(m.Stderr)
		stderr = barLines{bar}
		closers = append(closers, func(migrate.Summary) error { bar.stop(); return nil })
	}
	if m.dryRun || m.verbose {
		w := stderr
		if m.dryRun {
			w = m.Stdout
		}
		obs = append(obs, &table{w: w, notes: m.dryRun, diffs: m.showRepairs})
	}
	if !m.quiet && !m.dryRun {
		obs = append(obs, notes{stderr})
	}
	if !m.verbose && !m.dryRun {
		// What went wrong is listed even without -v, and with --quiet:
		// the summary points at this list.
		obs = append(obs, problems{stderr})
	}
	if bar != nil {
		obs = append(obs, bar)
	}
	if m.extraObserver != nil {
		obs = append(obs, m.extraObserver)
	}
	finish := func(sum migrate.Summary, err error) error {
		var first error
		for _, c := range closers {
			if e := c(sum); e != nil && first == nil {
				first = e
			}
		}
		printSummary(m.Stdout, sum, err)
		return first
	}
	return obs, finish, nil
}

type multi []migrate.Observer

func (o multi) Planned(todo int, bytes int64, done int) {
	for _, x := range o {
		x.Planned(todo, bytes, done)
	}
}

func (o multi) Message(ev migrate.Event) {
	for _, x := range o {
		x.Message(ev)
	}
}

func (o multi) Progress(n int, bytes int64) {
	for _, x := range o {
		x.Progress(n, bytes)
	}
}

func (o multi) Note(s string) {
	for _, x := range o {
		x.Note(s)
	}
}

type notes struct{ w io.Writer }

func (notes) Planned(int, int64, int) {}
func (notes) Message(migrate.Event)   {}
func (notes) Progress(int, int64)     {}
func (n notes) Note(s string)         { fmt.Fprintln(n.w, "note:", s) }

// problems prints the messages that were not copied, or not as sent.
type problems struct{ w io.Writer }

func (problems) Planned(int, int64, int) {}
func (problems) Note(string)             {}
func (problems) Progress(int, int64)     {}

func (p problems) Message(ev migrate.Event) {
	switch {
	case ev.Action == migrate.ActMissing:
		fmt.Fprintf(p.w, "missing at the destination: %s: %s\n", ev.ID, ev.Reason)
	case ev.Action == migrate.ActFailed:
		fmt.Fprintf(p.w, "not copied: %s (%s, %s): %s\n", ev.ID, clipRunes(ev.Subject, 60), ev.Folder, ev.Reason)
	case ev.Altered != nil:
		fmt.Fprintf(p.w, "stored altered: %s (%s, %s, UID %d): %s\n", ev.ID, clipRunes(ev.Subject, 60), ev.Folder, ev.UID, ev.Altered)
	}
}

// table prints one readable line per message.
type table struct {
	w      io.Writer
	notes  bool // a dry-run's table carries the notes: they are part of the plan
	diffs  bool // --show-repairs
	header bool
}

func (t *table) Planned(todo int, bytes int64, done int) {
	fmt.Fprintf(t.w, "%d message(s) to read (%s), %d already done\n", todo, human(bytes), done)
}

func (t *table) Progress(int, int64) {}

func (t *table) Note(s string) {
	if t.notes {
		fmt.Fprintln(t.w, "note:", s)
	}
}

func (t *table) Message(ev migrate.Event) {
	if !t.header {
		fmt.Fprintf(t.w, "%6s  %-12s  %-14s  %-26s  %9s  %s\n", "#", "ACTION", "FOLDER", "DATE (FROM)", "SIZE", "SUBJECT / REASON")
		t.header = true
	}
	date := ""
	if !ev.Date.IsZero() {
		date = ev.Date.Local().Format("2006-01-02 15:04") + " (" + ev.DateSource + ")"
	}
	what := ev.Subject
	if ev.Action != migrate.ActCopied && ev.Action != migrate.ActWouldCopy && ev.Reason != "" {
		what = strings.TrimSpace(what + "  [" + ev.Reason + "]")
	}
	if ev.Action == migrate.ActAlreadyDone {
		what = ev.ID
	}
	if ev.Verdict != "" && (ev.Verdict != "unknown" || strings.Contains(ev.Spam, ";")) {
		what += "  [" + ev.Spam + "]"
	}
	if len(ev.Dropped) > 0 {
		what += fmt.Sprintf("  [flags dropped: %s]", strings.Join(ev.Dropped, " "))
	}
	if ev.Altered != nil {
		what += "  [STORED ALTERED by the server: " + ev.Altered.String() + "]"
	}
	if len(ev.Repairs) > 0 {
		codes := make([]string, len(ev.Repairs))
		for i, f := range ev.Repairs {
			codes[i] = f.Code
		}
		what += "  [repaired: " + strings.Join(codes, ", ") + "]"
	}
	fmt.Fprintf(t.w, "%6d  %-12s  %-14s  %-26s  %9s  %s\n", ev.Seq, ev.Action, clipRunes(ev.Folder, 14), date, human(ev.Size), clipRunes(what, 200))
	if t.diffs {
		for _, f := range ev.Repairs {
			fmt.Fprintf(t.w, "%8s  repair %s: %s\n%8s    %s\n", "", f.Code, f.Text, "", f.Change)
		}
		for _, d := range ev.RepairDiff {
			fmt.Fprintf(t.w, "%8s    %s\n", "", clipRunes(d, 160))
		}
	}
}

func clipRunes(s string, n int) string {
	r := []rune(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return string(r)
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// report streams a JSON document: the messages as they are decided, then
// the summary. It is readable by the owner only.
type report struct {
	f     *os.File
	enc   *json.Encoder
	first bool
	err   error
}

func newReport(path string) (*report, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, usagef("--report: %v", err)
	}
	f.Chmod(0o600)
	r := &report{f: f, enc: json.NewEncoder(f), first: true}
	_, r.err = io.WriteString(f, "{\"messages\": [\n")
	return r, nil
}

func (r *report) Planned(int, int64, int) {}
func (r *report) Note(string)             {}
func (r *report) Progress(int, int64)     {}

func (r *report) Message(ev migrate.Event) {
	if r.err != nil {
		return
	}
	if !r.first {
		_, r.err = io.WriteString(r.f, ",")
	}
	r.first = false
	if r.err == nil {
		r.err = r.enc.Encode(ev)
	}
}

func (r *report) close(sum migrate.Summary) error {
	if r.err == nil {
		_, r.err = io.WriteString(r.f, "],\n\"summary\": ")
	}
	if r.err == nil {
		r.err = r.enc.Encode(sum)
	}
	if r.err == nil {
		_, r.err = io.WriteString(r.f, "}\n")
	}
	if err := r.f.Close(); r.err == nil {
		r.err = err
	}
	if r.err != nil {
		return fmt.Errorf("write report: %w", r.err)
	}
	return nil
}

// progress draws a bar on a terminal, and otherwise logs a plain line every
// 10 seconds: progressbar on a file would write an endless line.
type progress struct {
	w   io.Writer
	bar *progressbar.ProgressBar

	mu                sync.Mutex
	todo, n           int   // planned; read and dealt with (Progress)
	copied            int   // confirmed by the server (Message)
	bytes, totalBytes int64 // announced sizes, as planned
	start             time.Time
	done              chan struct{}
	once              sync.Once
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, start: time.Now(), done: make(chan struct{})}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) Planned(todo int, bytes int64, done int) {
	p.mu.Lock()
	p.todo, p.totalBytes, p.start = todo, bytes, time.Now() // the pace counts from here
	p.mu.Unlock()
	if todo == 0 {
		return
	}
	if isTerminal(p.w) {
		bar := progressbar.NewOptions64(bytes,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(250*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetDescription(fmt.Sprintf("0/%d messages", todo)),
			progressbar.OptionFullWidth(),
		)
		p.mu.Lock()
		p.bar = bar
		p.mu.Unlock()
		return
	}
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.logLine()
			}
		}
	}()
}

func (p *progress) logLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start)
	rate := float64(p.n) / el.Seconds()
	eta := "unknown"
	if rate > 0 {
		eta = (time.Duration(float64(p.todo-p.n)/rate) * time.Second).Round(time.Second).String()
	}
	if p.totalBytes > 0 && p.bytes > 0 {
		// By bytes: a mailbox's big attachments come where they come.
		eta = (time.Duration(float64(p.totalBytes-p.bytes)/(float64(p.bytes)/el.Seconds())) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s progress: %d/%d messages (%d confirmed copied), %s of %s, %.1f msg/s, ETA %s\n",
		time.Now().Format("15:04:05"), p.n, p.todo, p.copied, human(p.bytes), human(p.totalBytes), rate, eta)
}

func (p *progress) Message(ev migrate.Event) {
	if ev.Action != migrate.ActCopied {
		return
	}
	p.mu.Lock()
	p.copied++
	p.mu.Unlock()
}

// Progress moves the bar and the counts message by message, as the run
// reads and hands them over, not batch by batch as the server confirms.
func (p *progress) Progress(n int, bytes int64) {
	p.mu.Lock()
	p.n, p.bytes = n, bytes
	todo, copied, bar, total := p.todo, p.copied, p.bar, p.totalBytes
	p.mu.Unlock()
	if bar != nil {
		bar.Describe(fmt.Sprintf("%d/%d messages (%d copied)", n, todo, copied))
		// Short of the end: a bar at its end is finished, and would keep
		// the count of confirmations it had then; stop draws the last.
		bar.Set64(min(bytes, total-1))
	}
}

func (p *progress) Note(string) {}

// barLines writes whole lines to the progress bar's writer, the bar
// cleared first; it is drawn again at the next message.
type barLines struct{ p *progress }

func (b barLines) Write(data []byte) (int, error) {
	b.p.mu.Lock()
	bar := b.p.bar
	b.p.mu.Unlock()
	if bar != nil {
		bar.Clear()
	}
	return b.p.w.Write(data)
}

func (p *progress) stop() {
	p.once.Do(func() {
		close(p.done)
		if p.bar != nil {
			// The last frame with the last count: every confirmation
			// has come in by now.
			p.mu.Lock()
			p.bar.Describe(fmt.Sprintf("%d/%d messages (%d copied)", p.n, p.todo, p.copied))
			p.mu.Unlock()
			p.bar.Finish()
			fmt.Fprintln(p.w)
		}
	})
}

func printSummary(w io.Writer, s migrate.Summary, err error) {
	if err != nil && s.Listed == 0 && s.Copied == 0 && s.Failed == 0 {
		return // stopped before looking at anything: the error says it all
	}
	copied := "copied"
	if s.DryRun {
		copied = "would copy"
	}
	sofar := ""
	if err != nil && !s.Interrupted {
		sofar = "stopped before the end (see below); so far: "
	}
	fmt.Fprintf(w, "\n%s%s %d, already done %d, already at destination %d, duplicates %d, failed %d",
		sofar, copied, s.Copied, s.AlreadyDone, s.Present, s.Duplicates, s.Failed)
	if s.Skipped > 0 {
		fmt.Fprintf(w, ", skipped %d (deleted in the old mail client; --include-deleted copies them)", s.Skipped)
	}
	if s.Reconciled > 0 {
		fmt.Fprintf(w, ", reconciled after interruption %d", s.Reconciled)
	}
	if s.Missing > 0 {
		fmt.Fprintf(w, ", copied earlier but no longer at the destination %d", s.Missing)
	}
	fmt.Fprintf(w, "\n%s in %s (%.1f messages/s) of %d listed\n", human(s.Bytes), s.Elapsed.Round(time.Millisecond), s.Rate(), s.Listed)
	if len(s.Verdicts) > 0 {
		keys := slices.Sorted(maps.Keys(s.Verdicts))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, s.Verdicts[k])
		}
		fmt.Fprintf(w, "spam check (%s", s.SpamPolicy)
		if s.JunkFolder != "" && s.SpamPolicy == "route" {
			fmt.Fprintf(w, " to %q", s.JunkFolder)
		}
		fmt.Fprintf(w, "): %s\n", strings.Join(parts, ", "))
	}
	if len(s.Repairs) > 0 {
		keys := slices.Sorted(maps.Keys(s.Repairs))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, s.Repairs[k])
		}
		fmt.Fprintf(w, "repaired (originals kept): %s\n", strings.Join(parts, ", "))
	}
	if s.Altered > 0 {
		fmt.Fprintf(w, "WARNING: the server stored %d message(s) otherwise than sent (listed above and in the report; originals kept)\n", s.Altered)
	}
	if s.Checked > 0 && !s.DryRun {
		fmt.Fprintf(w, "read back and found as sent: %d message(s) (each folder's first, and those of kinds servers alter)\n", s.Checked)
	}
	for _, f := range s.Guarded {
		if f == "" {
			f = "the source mailbox"
		}
		fmt.Fprintf(w, "WARNING: %s: most messages carried a spam header; not routed to junk on headers alone (--spam-trust-headers to override)\n", f)
	}
	if s.KeepDuplicates {
		fmt.Fprintln(w, "--keep-duplicates: deduplication was off")
	}
	if s.Interrupted {
		fmt.Fprintln(w, "interrupted: run the same command again to carry on")
	} else if err == nil && s.Copied == 0 && s.Failed == 0 && s.Missing == 0 && !s.DryRun {
		// Said only after looking: the copies recorded were found where
		// they were put (UIDVALIDITY and UID, or Message-ID without UIDPLUS).
		fmt.Fprintf(w, "nothing to copy: everything is at the destination (%d copied earlier confirmed there, %d found there now)\n",
			s.Confirmed, s.Present)
	}
}
