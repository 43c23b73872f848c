package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	stdmime "mime"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	"github.com/mailmove/mailmove/mime"
)

// Options tune a run. The zero value works: messages go to INBOX.
type Options struct {
	Folder string // destination of messages whose source has no folders
	// FolderMap overrides where source folders go: source path → destination
	// path, "/" between levels (see PlanFolder).
	FolderMap      map[string]string
	KeepDuplicates bool   // copy even what is already copied or present
	DryRun         bool   // only changes wording: the dry-run decorators do the work
	SpoolDir       string // where large messages wait; default os.TempDir()
	SpoolLimit     int    // bytes kept in memory per message; default 1 MiB
	Run            string // this run's ID, recorded with every message
	Now            func() time.Time
	Observer       Observer
	Keep           Keeper        // where messages that cannot be copied are kept (the quarantine)
	Archive        Keeper        // where the originals of repaired messages are kept
	ReviewFolder   string        // where readable stand-ins for XML records go; default "mailmove-review"
	EncodeHeaders  bool          // RFC 2047-encode 8-bit header bytes up front (else only after a refusal)
	FoldLines      bool          // re-encode lines over 998 octets up front (else only after a refusal)
	CloseParts     bool          // close multiparts that never end up front (else only after a refusal)
	Spam           SpamPolicy    // what a spam verdict does; default SpamRoute
	JunkFolder     string        // where routed spam goes; default the destination's \Junk folder
	GuardRatio     float64       // share of a folder that header verdicts may send to junk; default 0.5
	GuardMin       int           // folders smaller than this are not guarded; default 10
	TrustHeaders   bool          // act on header verdicts whatever their share
	Retries        int           // attempts on a transient error; default 5
	AuthPause      time.Duration // before the one retry of a login refused "for now"; default 15 minutes
	Backoff        time.Duration // first pause between attempts; default 2 s, doubling
	// SharedDestination says another run copies into the same destination
	// account at the same time (from another source): what a folder holds
	// is read again, for what that run appended, every few seconds.
	SharedDestination bool
	// RecopyMissing copies again what the state records as copied but the
	// destination no longer holds (deleted there): by default it is
	// reported and left alone.
	RecopyMissing bool
	// Connections is how many connections of its own the destination may
	// open to append in parallel, when it can (a Pipeliner). 0: appends go
	// one at a time over the destination's one connection.
	Connections int
}

// Keeper keeps a message that could not be copied, so nothing is lost, and
// returns where it put it.
type Keeper interface {
	Keep(rec Record, body *Body) (string, error)
}

// stopError ends a run: it is not a source connection problem to retry.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

type runner struct {
	src         Source
	dst         Destination
	cp          Checkpoint
	opt         Options
	sum         Summary
	seq         int
	done        map[string]State
	verdictOf   map[string]string // spam verdict keys of messages without an outcome yet
	settledNow  map[string]bool   // content-named messages settled by this run
	idx         map[string]*folderIndex
	boxes       map[string]MailboxInfo
	authRetried bool                  // the one retry a transient-looking login refusal gets is used
	plans       map[string]FolderPlan // source folder → destination
	dest        []Folder              // the destination's folders, listed once
	ns          Namespace             // and its personal namespace
	utf8        bool                  // it takes 8-bit headers as they are
	acctNotes   []string
	boxErr      map[string]error // folders the server would not create or open
	spam        spamPlan
	words       stdmime.WordDecoder

	// The upload stage (upload.go).
	pipeliner   Pipeliner           // nil: one message at a time on dst itself
	pipe        Pipe                // opened by startPipe
	forming     map[string]*forming // folder → the batch being filled
	claimed     map[string]string   // claimKey → ID: copied or in flight, maybe not in cp yet
	staged      []Record            // written by the next flush
	sent        int                 // batches sent whose outcome is not taken yet
	stopErr     error               // what stops the run, found while taking outcomes
	pipeRefused bool
	partial     Entry             // the message the source's connection last failed in the middle of
	checked     map[string]bool   // folders whose first message was read back
	flagsSeen   map[string]bool   // folders whose kept keywords were read back once
	flagWatch   map[string]bool   // folders where the server removed keywords: every message is read back
	said        map[string]bool   // notes given once (noteOnce)
	missing     map[string]string // recorded as copied, no longer at the destination: ID → why
	pipeConns   int               // connections of the pipe now: fewer after the server could not take them
	// uncodedFutile counts the messages in a row whose uncoded refusals
	// (see Permanent) stayed after every attempt: past uncodedGiveUp they
	// are taken as final, so that a server that means them costs little.
	uncodedFutile int
	notSent       int // messages of batches cut short by a stop
	handled       int // messages read and dealt with, for Progress
	handledBytes  int64
	mu            sync.Mutex // guards results
	results       []sentBatch
	ready         chan struct{}
}

// Run copies every message of src to dst that cp does not record as done,
// recording each step in cp so that a run stopped at any moment, even by
// SIGKILL, can be run again without losing or doubling a message.
//
// It returns the summary and, when the run could not finish, why: the
// context's error when it was cancelled, or the error that stopped it.
// Messages that failed on their own are counted in the summary, not returned.
func Run(ctx context.Context, src Source, dst Destination, cp Checkpoint, opt Options) (Summary, error) {
	if opt.Folder == "" {
		opt.Folder = "INBOX"
	}
	if opt.SpoolLimit <= 0 {
		opt.SpoolLimit = 1 << 20
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Observer == nil {
		opt.Observer = NopObserver{}
	}
	if opt.Retries <= 0 {
		opt.Retries = 5
	}
	if opt.AuthPause <= 0 {
		opt.AuthPause = 15 * time.Minute
	}
	if opt.Spam == "" {
		opt.Spam = SpamRoute
	}
	if opt.GuardRatio <= 0 {
		opt.GuardRatio = 0.5
	}
	if opt.GuardMin <= 0 {
		opt.GuardMin = 10
	}
	if opt.ReviewFolder == "" {
		opt.ReviewFolder = "mailmove-review"
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 2 * time.Second
	}
	r := &runner{
		src: src, dst: dst, cp: cp, opt: opt,
		done:       map[string]State{},
		verdictOf:  map[string]string{},
		settledNow: map[string]bool{},
		idx:        map[string]*folderIndex{},
		boxes:      map[string]MailboxInfo{},
		boxErr:     map[string]error{},
		checked:    map[string]bool{}, flagsSeen: map[string]bool{}, flagWatch: map[string]bool{},
		plans:   map[string]FolderPlan{},
		words:   stdmime.WordDecoder{CharsetReader: charset.Reader},
		forming: map[string]*forming{},
		claimed: map[string]string{},
		ready:   make(chan struct{}, 1),
	}
	if p, ok := dst.(Pipeliner); ok && opt.Connections > 0 {
		r.pipeliner = p // the pipe opens once a login has worked (startPipe)
	}
	r.sum = Summary{
		Source: src.Describe(), Destination: dst.Describe(), Run: opt.Run,
		DryRun: opt.DryRun, KeepDuplicates: opt.KeepDuplicates,
		SpamPolicy: string(opt.Spam), Verdicts: map[string]int{}, Repairs: map[string]int{},
	}
	start := opt.Now()
	err := r.run(ctx)
	err = r.closePipe(ctx, err)
	if ferr := r.flush(); err == nil {
		err = ferr
	}
	r.sum.Elapsed = opt.Now().Sub(start)
	if ctx.Err() != nil && (err != nil || r.notSent > 0) {
		r.sum.Interrupted = true
		err = ctx.Err()
	}
	var stop *stopError
	if errors.As(err, &stop) {
		err = stop.err
	}
	return r.sum, err
}

func (r *runner) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.sum.Notes = append(r.sum.Notes, s)
	r.opt.Observer.Note(s)
}

func (r *runner) emit(ev Event) {
	r.seq++
	ev.Seq = r.seq
	r.opt.Observer.Message(ev)
}

func (r *runner) run(ctx context.Context) error {
	warm := make(chan error, 1)
	go func() { warm <- r.warm(ctx) }()
	entries, err := r.list(ctx)
	werr := <-warm
	if err != nil {
		return err
	}
	if werr == nil {
		r.startPipe()
	} else if !r.transient(werr) {
		// A refused login or an untrusted certificate: decided here, as
		// the first use of the destination would have, so that a wrong
		// password is tried once, not again by the next step.
		again, perr := r.again(ctx, werr, 0, r.dst.Describe())
		if perr != nil {
			return perr
		}
		if !again {
			return &stopError{werr}
		}
	}
	r.sum.Listed = len(entries)
	if n, ok := r.src.(interface{ Notes() []string }); ok {
		for _, s := range n.Notes() {
			r.note("%s", s)
		}
	}
	var pending []Record
	doneVerdict := map[string]string{}
	held := map[folderValidity][]uint32{} // what the state says the destination holds
	keyed := map[string]map[string]int{}  // the same without UIDs: folder, key, how many
	err = r.cp.Records(func(rec Record) error {
		switch {
		case rec.State.Final():
			r.done[rec.ID] = rec.State
			if rec.UID != 0 && rec.UIDValidity != 0 && rec.Folder != "" {
				k := folderValidity{rec.Folder, rec.UIDValidity}
				held[k] = append(held[k], rec.UID)
			} else if rec.State == Copied && rec.Key != "" && rec.Folder != "" {
				// Appended to a server without UIDPLUS: known by its key.
				if keyed[rec.Folder] == nil {
					keyed[rec.Folder] = map[string]int{}
				}
				keyed[rec.Folder][rec.Key]++
			}
			if rec.Verdict != "" {
				doneVerdict[rec.ID] = rec.Verdict + "/" + rec.Basis
			}
		case rec.State == Pending:
			pending = append(pending, rec)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	if n, ok := r.cp.(interface{ Notes() []string }); ok {
		for _, s := range n.Notes() {
			r.note("%s", s)
		}
	}
	if err := r.reconcile(ctx, pending, doneVerdict); err != nil {
		return err
	}
	if err := r.confirmDone(ctx, held, keyed); err != nil {
		return err
	}
	if err := r.planFolders(ctx, entries); err != nil {
		return err
	}
	var todo []Entry
	var bytes int64
	for _, e := range entries {
		if e.Skip != "" {
			r.sum.Skipped++
			r.emit(Event{ID: e.ID, Action: ActSkipped, Reason: e.Skip, Folder: r.destFolder(e.Folder), Size: e.Size})
			continue
		}
		if why, ok := r.missing[e.ID]; ok && e.ID != "" {
			r.sum.Missing++
			r.emit(Event{ID: e.ID, Action: ActMissing, Reason: why, Size: e.Size})
			continue
		}
		if st, ok := r.done[e.ID]; ok && e.ID != "" {
			r.sum.AlreadyDone++
			r.emit(Event{ID: e.ID, Action: ActAlreadyDone, Reason: string(st), Size: e.Size})
			continue
		}
		todo = append(todo, e)
		bytes += e.Size
	}
	if err := r.planSpam(ctx, entries, todo, doneVerdict); err != nil {
		return err
	}
	r.opt.Observer.Planned(len(todo), bytes, r.sum.AlreadyDone)
	return r.retrieve(ctx, todo)
}

// warm connects to the destination while the source is listed, each a few
// round trips that need not wait for the other: it lists the folders and
// selects the default folder. (What the folder holds is read only when there
// is something to copy: a resumed run over 100,000 messages needs none of
// it.) It touches only r.dest and r.boxes, which nothing else uses until it
// is done, and says nothing: the caller decides on its error.
func (r *runner) warm(ctx context.Context) error {
	if err := r.listDest(ctx); err != nil {
		return err
	}
	box, err := r.dst.Mailbox(ctx, r.opt.Folder, false)
	if err == nil && box.Exists {
		r.boxes[r.opt.Folder] = box
	}
	return err
}

// planFolders decides, before anything is copied, where each source folder
// goes, and says so: the dry-run shows the same plan.
func (r *runner) planFolders(ctx context.Context, entries []Entry) error {
	var names []string
	for _, e := range entries {
		if _, ok := r.plans[e.Folder]; !ok && e.Folder != "" {
			r.plans[e.Folder] = FolderPlan{}
			names = append(names, e.Folder)
		}
	}
	dest, err := r.destFolders(ctx) // also names --folder and the review folder
	if err != nil {
		return err
	}
	for _, n := range r.acctNotes {
		r.noteOnce(n, "%s", n)
	}
	used := map[string]bool{}
	for _, name := range names {
		p := PlanFolder(name, dest, r.ns, r.opt.FolderMap)
		r.plans[name] = p
		r.sum.Folders = append(r.sum.Folders, p)
		r.note("folder %q → %q (%s)", p.Source, p.Dest, p.How)
		used[p.How] = true
	}
	return r.checkFolderMap(used)
}

// checkFolderMap refuses, before anything is copied, a --folder-map entry
// that matches no source folder: a typo would otherwise send the folder
// it meant where the map says it should not go, without a word.
func (r *runner) checkFolderMap(used map[string]bool) error {
	var unused []string
	for k, v := range r.opt.FolderMap {
		if !used[fmt.Sprintf("--folder-map %s=%s", k, v)] {
			unused = append(unused, k+"="+v)
		}
	}
	if len(unused) == 0 {
		return nil
	}
	slices.Sort(unused)
	var have []string
	for name := range r.plans {
		have = append(have, fmt.Sprintf("%q", name))
	}
	if len(have) == 0 {
		// Nothing goes astray: the messages go where --folder says.
		r.note("WARNING: --folder-map %s does nothing here: %s has no folders (a POP3 mailbox is one inbox); --folder NAME says where its messages go",
			strings.Join(unused, ", "), r.src.Describe())
		return nil
	}
	slices.Sort(have)
	if len(have) > 20 {
		have = append(have[:20], fmt.Sprintf("and %d more", len(have)-20))
	}
	return &Fatal{Err: fmt.Errorf("--folder-map %s: no folder of %s is named so (it has %s); nothing was copied",
		strings.Join(unused, ", "), r.src.Describe(), strings.Join(have, ", "))}
}

// destFolders lists the destination's folders once per run.
func (r *runner) destFolders(ctx context.Context) ([]Folder, error) {
	if r.dest != nil {
		return r.dest, nil
	}
	err := r.withRetry(ctx, func() error { return r.listDest(ctx) })
	return r.dest, err
}

// listDest lists the destination's folders and personal namespace, and
// names the folders the user gave (--folder, the review folder) as the
// server will: under its personal prefix.
func (r *runner) listDest(ctx context.Context) error {
	folders, err := r.dst.Folders(ctx)
	if err != nil {
		return err
	}
	acct, err := r.dst.Account(ctx)
	if err != nil {
		return err
	}
	ns := acct.Namespace
	r.dest, r.ns, r.utf8, r.acctNotes = folders, ns, acct.UTF8, acct.Notes // said by planFolders: this may run beside the source's listing
	r.opt.Folder = ns.Qualify(r.opt.Folder, folders)
	r.opt.ReviewFolder = ns.Qualify(r.opt.ReviewFolder, folders)
	return nil
}

func (r *runner) list(ctx context.Context) ([]Entry, error) {
	for attempt := 0; ; attempt++ {
		entries, err := r.src.List(ctx)
		if err == nil {
			return entries, nil
		}
		again, perr := r.again(ctx, err, attempt, "listing "+r.src.Describe())
		if perr != nil {
			return nil, perr
		}
		if !again {
			return nil, err
		}
	}
}

// reconcile settles messages an earlier run left pending: it may have been
// stopped after the server stored one but before recording it. Each is looked
// for at the destination before anything is appended again.
func (r *runner) reconcile(ctx context.Context, pending []Record, doneVerdict map[string]string) error {
	slices.SortFunc(pending, func(a, b Record) int { return cmpString(a.ID, b.ID) })
	find := func(rec Record) (uint32, bool, error) {
		var uid uint32
		var found bool
		err := r.withRetry(ctx, func() error {
			var err error
			uid, found, err = r.lookup(ctx, rec.Folder, rec.Key, rec.MessageID != "", rec.Size, rec.Fingerprint)
			return err
		})
		return uid, found, err
	}
	uids := make([]uint32, len(pending))
	found := make([]bool, len(pending))
	missing := 0
	for i, rec := range pending {
		var err error
		if uids[i], found[i], err = find(rec); err != nil {
			return err
		}
		if !found[i] {
			missing++
		}
	}
	if missing > 0 {
		// The server may still be storing what the killed run sent it
		// (Courier finishes an APPEND after its client is gone): look
		// again after a moment before copying anything a second time.
		if err := r.sleep(ctx, reconcileWait); err != nil {
			return err
		}
		clear(r.idx)
		for i, rec := range pending {
			if found[i] {
				continue
			}
			var err error
			if uids[i], found[i], err = find(rec); err != nil {
				return err
			}
		}
	}
	for i, rec := range pending {
		if found[i] {
			rec.State, rec.UID = Copied, uids[i]
			rec.Reason = "found at the destination after an interrupted run"
			r.done[rec.ID] = Copied
			r.sum.Reconciled++
			if rec.Verdict != "" {
				// Counted by the spam guard like every message done.
				doneVerdict[rec.ID] = rec.Verdict + "/" + rec.Basis
			}
		} else {
			rec.State = Failed
			rec.Reason = "interrupted before the server confirmed it, and not at the destination: copied again"
		}
		if err := r.stage(rec); err != nil {
			return err
		}
	}
	if err := r.flush(); err != nil {
		return err
	}
	if len(pending) > 0 {
		r.note("%d message(s) were in flight when the last run stopped: %d found at the destination, %d to copy again",
			len(pending), r.sum.Reconciled, len(pending)-r.sum.Reconciled)
	}
	return nil
}

// reconcileWait is how long a run waits before it looks a second time for
// messages a killed run had in flight and it did not find.
var reconcileWait = 3 * time.Second

func (r *runner) retrieve(ctx context.Context, todo []Entry) error {
	// A message the connection fails in the middle of, time after time (a
	// server that always stops at the same point), fails alone.
	cut := func(e Entry, err error) (bool, error) {
		if r.partial != e {
			return false, nil
		}
		r.partial = Entry{}
		folder := r.destFolder(e.Folder)
		id := e.ID
		if id == "" {
			id = fmt.Sprintf("num:%d", e.Num)
		}
		rec := Record{ID: id, Folder: folder, Size: e.Size, Offset: e.Offset, Run: r.opt.Run}
		ev := Event{ID: id, Folder: folder, Size: e.Size}
		reason := fmt.Errorf("the connection failed in the middle of this message %d times in a row (%v): not copied; it is tried again next run", cutTries, err)
		return true, r.fail(&rec, &ev, nil, &Permanent{Err: reason})
	}
	return r.resumeCut(ctx, "reading from", todo, cut, func(todo []Entry, done func(Entry)) error {
		return r.src.Retrieve(ctx, todo, func(in *Incoming) error {
			if err := ctx.Err(); err != nil {
				return &stopError{err}
			}
			e := in.Entry // process may name an unnamed entry
			if err := r.process(ctx, in); err != nil {
				return err
			}
			done(e)
			r.handled++
			r.handledBytes += e.Size
			r.opt.Observer.Progress(r.handled, r.handledBytes)
			return nil
		})
	})
}

// resume runs pass over entries; pass calls done with each entry it has
// finished. After a transient failure it pauses and runs pass again over
// the entries after the last one done. The position follows the entries
// themselves, not a count, so it is right whatever the source did between.
func (r *runner) resume(ctx context.Context, what string, entries []Entry, pass func([]Entry, func(Entry)) error) error {
	return r.resumeCut(ctx, what, entries, nil, pass)
}

// cutTries is how many times in a row the source's connection may fail in
// the middle of the same message before that message fails alone.
const cutTries = 3

// resumeCut is resume where cut, when set, may give up on the first entry
// left after it failed cutTries times in a row: it returns whether it did
// (and recorded it), so that the pass goes on with the next.
func (r *runner) resumeCut(ctx context.Context, what string, entries []Entry, cut func(Entry, error) (bool, error), pass func([]Entry, func(Entry)) error) error {
	failures, same := 0, 0
	for len(entries) > 0 {
		todo, next := entries, 0
		err := pass(todo, func(e Entry) {
			for next < len(todo) && todo[next] != e {
				next++
			}
			next = min(next+1, len(todo))
		})
		entries = entries[next:]
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrReconnect) && ctx.Err() == nil {
			failures, same = 0, 0
			continue
		}
		if next > 0 {
			failures, same = 0, 0
		}
		if cut != nil && len(entries) > 0 && r.partial == entries[0] {
			if same++; same >= cutTries {
				gave, cerr := cut(entries[0], err)
				if cerr != nil {
					return cerr
				}
				if gave {
					entries, failures, same = entries[1:], 0, 0
					continue
				}
			}
		}
		failures++
		again, perr := r.again(ctx, err, failures-1, what+" "+r.src.Describe())
		if perr != nil {
			return perr
		}
		if !again {
			return err
		}
	}
	return nil
}

// transient reports whether err may go away by reconnecting and trying again.
func (r *runner) transient(err error) bool {
	var stop *stopError
	var fatal *Fatal
	var perm *Permanent
	return err != nil && !errors.As(err, &stop) && !errors.As(err, &fatal) && !errors.As(err, &perm) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// again decides, in one place for every operation, whether err is worth
// another attempt, and pauses before it: a transient error (a reset, a
// timeout, BYE, [UNAVAILABLE], throttling) gets Retries attempts with
// exponential backoff and jitter, longer when the server suggests it; a
// refused login gets one, after AuthPause, only when the server said it may
// pass; anything else none. It returns an error only when ctx ended while
// pausing.
func (r *runner) again(ctx context.Context, err error, attempt int, what string) (bool, error) {
	var auth *AuthError
	if errors.As(err, &auth) {
		if !auth.Transient || r.authRetried || ctx.Err() != nil {
			return false, nil
		}
		r.authRetried = true
		r.note("%v; trying once more in %s, and only once", auth, r.opt.AuthPause)
		return true, r.sleep(ctx, r.opt.AuthPause)
	}
	var un *Unreachable
	if errors.As(err, &un) {
		// Not reached at all yet: a wrong host or port, or a server down.
		// Two more tries, seconds apart, then the run says so.
		if attempt >= 2 || ctx.Err() != nil {
			return false, nil
		}
		r.note("%v; trying again in a moment", err)
		return true, r.sleep(ctx, time.Second<<attempt)
	}
	if !r.transient(err) || ctx.Err() != nil || attempt >= r.opt.Retries {
		return false, nil
	}
	r.note("%s: %v; trying again", what, err)
	return true, r.pause(ctx, attempt, err)
}

var suggested = regexp.MustCompile(`(?i)suggested backoff time:\s*(\d+)\s*(ms|milliseconds|s|seconds)?`)

// pause waits before attempt number attempt: the base backoff doubled per
// attempt, with up to half of it taken off at random so that many clients
// do not come back together, and no less than the server suggested
// (Microsoft: "Suggested Backoff Time: 2000 ms").
func (r *runner) pause(ctx context.Context, attempt int, cause error) error {
	d := r.opt.Backoff << min(attempt, 6)
	d -= time.Duration(rand.Int64N(int64(d)/2 + 1))
	if cause != nil {
		if m := suggested.FindStringSubmatch(cause.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			s := time.Duration(n) * time.Millisecond
			if strings.HasPrefix(strings.ToLower(m[2]), "s") {
				s = time.Duration(n) * time.Second
			}
			d = max(d, min(s, 10*time.Minute))
		}
	}
	return r.sleep(ctx, d)
}

func (r *runner) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return &stopError{ctx.Err()}
	case <-t.C:
		return nil
	}
}

// withRetry runs a destination operation, retrying transient failures after
// dropping the cached folder indexes (the server's state may have moved on).
func (r *runner) withRetry(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		again, perr := r.again(ctx, err, attempt, r.dst.Describe())
		if perr != nil {
			return perr
		}
		if !again {
			return &stopError{err}
		}
		clear(r.idx)
	}
}

// readErr remembers a read error, to tell a source failure from a local one.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// destFolder is where messages of a source folder go.
func (r *runner) destFolder(src string) string {
	if src == "" {
		return r.opt.Folder
	}
	return r.plans[src].Dest
}

func (r *runner) process(ctx context.Context, in *Incoming) error {
	if in.Err != nil {
		if in.ID == "" {
			in.ID = fmt.Sprintf("num:%d", in.Num)
		}
		folder := r.destFolder(in.Folder)
		rec := Record{ID: in.ID, Folder: folder, Size: in.Size, Offset: in.Offset, Run: r.opt.Run}
		ev := Event{ID: in.ID, Folder: folder, Size: in.Size}
		return r.fail(&rec, &ev, nil, in.Err)
	}
	sw := &spoolWriter{dir: r.opt.SpoolDir, limit: r.opt.SpoolLimit, hint: in.Size}
	cw := &mime.CRLFWriter{W: sw}
	fpw := mime.NewFingerprinter()
	probe := &mime.Probe{} // also keeps the header
	src := &readErr{r: in.R}
	_, err := io.Copy(io.MultiWriter(cw, fpw, probe), src)
	if err == nil {
		err = cw.Close()
	}
	if err != nil {
		sw.abort()
		var perm *Permanent
		if errors.As(src.err, &perm) {
			// The source gave up on this message (too large, too slow):
			// it fails alone, and stays where it is.
			folder := r.destFolder(in.Folder)
			rec := Record{ID: in.ID, Folder: folder, Size: in.Size, Offset: in.Offset, Run: r.opt.Run}
			if rec.ID == "" {
				rec.ID = fmt.Sprintf("num:%d", in.Num)
			}
			ev := Event{ID: rec.ID, Folder: folder, Size: in.Size}
			return r.fail(&rec, &ev, nil, perm)
		}
		if src.err != nil {
			r.partial = in.Entry // cut in the middle of this message
			return err           // the source's connection: retried by the caller
		}
		return &stopError{fmt.Errorf("spool message to %s: %w", r.opt.SpoolDir, err)}
	}
	body, err := sw.body()
	if err != nil {
		return &stopError{fmt.Errorf("spool message to %s: %w", r.opt.SpoolDir, err)}
	}
	j := &job{body: body, send: body}
	owned := false // by the upload stage, which releases it
	defer func() {
		if !owned {
			j.release()
		}
	}()

	h := mime.ParseHeader(probe.Header())
	fp := fpw.Sum().String()
	id := in.ID
	if id == "" {
		id = "fp:" + fp
		if why, ok := r.missing[id]; ok {
			r.sum.Missing++
			r.emit(Event{ID: id, Action: ActMissing, Reason: why, Size: body.Size()})
			return nil
		}
		if r.settledNow[id] {
			// Identical to a message this run dealt with: one copy.
			r.sum.Duplicates++
			r.emit(Event{ID: id, Action: ActDuplicate, Reason: "identical to another message of this mailbox, dealt with once", Size: body.Size()})
			return nil
		}
		if st, ok := r.done[id]; ok {
			r.sum.AlreadyDone++
			r.emit(Event{ID: id, Action: ActAlreadyDone, Reason: string(st), Size: body.Size()})
			return nil
		}
	}
	date, dsrc := in.Date, in.DateSource
	if date.IsZero() {
		var s mime.DateSource
		date, s = mime.ArrivalDate(h, r.opt.Now())
		dsrc = string(s)
	}
	// The verdict is the delivering provider's: it reads the header as
	// delivered, before any repair.
	folder := r.destFolder(in.Folder)
	if in.Dest != "" {
		folder = in.Dest
	}
	cls := mime.Classify(mime.SpamInput{Header: h, JunkFolder: sourceJunk(in.Folder), Keywords: in.Flags})
	natural := folder
	folder, flags, spamNote := r.applySpam(in.Folder, folder, in.Flags, cls)
	// Counted when the message has its outcome: one the run is stopped
	// before sending is not in the count.
	r.verdictOf[id] = cls.Key()
	rec := Record{
		ID: id, Folder: folder, Offset: in.Offset, Date: date, DateSource: dsrc, Run: r.opt.Run,
		Verdict: string(cls.Verdict), Basis: string(cls.Basis),
	}
	ev := Event{
		ID: id, Folder: folder, Date: date, DateSource: dsrc,
		Verdict: string(cls.Verdict), Spam: cls.Explain(), Evidence: cls.Evidence,
	}
	if spamNote != "" {
		ev.Spam += "; " + spamNote
	}
	j.rec, j.ev, j.flags, j.h, j.fp = rec, ev, flags, h, fp
	if natural != folder {
		j.natural = natural
	}
	// 8-bit header bytes are encoded unless the server says it takes them
	// (RFC 6855): Cyrus stores an X for each, others refuse them. Those
	// that are not UTF-8 are encoded anyway: RFC 6855 allows UTF-8 only.
	enc := r.opt.EncodeHeaders || !r.utf8 || !utf8.Valid(probe.Header())
	j.ropts = mime.RepairOptions{Date: date, EncodeHeaders: enc, FoldLines: r.opt.FoldLines, CloseParts: r.opt.CloseParts}
	if probe.Needs(j.ropts) {
		if j.send, err = r.repair(&j.rec, &j.ev, body, j.ropts, ""); err != nil {
			return err
		}
	}
	r.describe(&j.rec, &j.ev, j.send, h, fp)
	j.risky = !j.ropts.EncodeHeaders && probe.Header8bit() || !j.ropts.FoldLines && probe.Longest() > 998
	if j.send != j.body {
		j.forms = append(j.forms, form{key: IndexKey(h), hasMID: mime.MessageID(h) != "", size: body.Size(), fp: fp})
	}
	if cw.Collapsed > 0 {
		if old, complete := mime.OldForm(body.Open(), cw); complete {
			// Its header may end early: a blank line where a run was.
			f, head, n := mime.NewFingerprinter(), &mime.Probe{}, int64(0)
			if n, err = io.Copy(io.MultiWriter(f, head), old); err != nil {
				return &stopError{fmt.Errorf("read spooled message: %w", err)}
			}
			oh := mime.ParseHeader(head.Header())
			j.forms = append(j.forms, form{key: IndexKey(oh), hasMID: mime.MessageID(oh) != "", size: n, fp: f.Sum().String()})
		}
	}
	if r.pipeliner != nil {
		var settled bool
		owned, settled, err = r.enqueue(ctx, j)
		if owned || settled || err != nil {
			return err
		}
	}
	return r.deliver(ctx, j, 0)
}

// An uncoded refusal gets uncodedTries attempts in all, with backoff; two
// once uncodedGiveUp messages in a row found no attempt helped.
const (
	uncodedTries  = 3
	uncodedGiveUp = 3
)

// form is a message as a destination folder may hold it, for lookup.
type form struct {
	key    string
	hasMID bool
	size   int64
	fp     string
}

// job is one message on its way to the destination.
type job struct {
	rec        Record
	ev         Event
	flags      []string
	body, send *Body // as read, and as sent (the same unless repaired)
	h          mime.Header
	fp         string
	ropts      mime.RepairOptions
	// forms are other forms the message may have at the destination, put
	// there by another tool or an earlier mailmove: unrepaired, or with CR
	// CR LF as two line breaks (mailmove 0.1).
	forms []form
	// risky: what is sent is of a kind servers are known to alter (8-bit
	// header bytes, lines over 998 octets): what was stored is read back
	// and compared.
	risky bool
	// natural is where the message would go but for its spam verdict
	// (INBOX, for a POP3 mailbox): a copy already there, put by another
	// tool that knew no junk folder, is not doubled in the junk folder.
	natural string
}

func (j *job) release() {
	if j.send != j.body {
		j.send.Release()
	}
	j.body.Release()
}

// deliver copies one message on the runner's own connection, starting at
// attempt (above 0 when an earlier append may have reached the server): it
// retries transient failures and answers a refusal with the matching repair,
// once, before keeping the message in the quarantine.
func (r *runner) deliver(ctx context.Context, j *job, attempt int) error {
	repaired := false
	uncoded := 0 // uncoded refusals of this message so far
	for ; ; attempt++ {
		err := r.copy(ctx, j, attempt)
		if err == nil {
			if uncoded > 0 {
				r.uncodedFutile = 0 // trying again was worth it
			}
			return nil
		}
		var perm *Permanent
		var folder *FolderError
		if errors.As(err, &perm) {
			// A refusal names what the server disliked: try the matching
			// repair once, then give up on this message. A folder the
			// server refuses is no fault of the message.
			if more, ok := repairFor(err.Error(), j.ropts); ok && !repaired && !errors.As(err, &folder) {
				repaired, j.ropts = true, more
				next, rerr := r.repair(&j.rec, &j.ev, j.body, j.ropts, err.Error())
				if rerr != nil {
					return rerr
				}
				if next != j.send {
					if j.send != j.body {
						j.send.Release()
					}
					j.send = next
					r.describe(&j.rec, &j.ev, j.send, j.h, j.fp)
					attempt = -1
					continue
				}
			}
			tries := uncodedTries
			if r.uncodedFutile >= uncodedGiveUp {
				tries = 2 // the server seems to mean them: one more try only
			}
			if perm.Uncoded && !errors.As(err, &folder) && uncoded < tries-1 {
				// No response code: maybe the server's own trouble.
				if err := r.pause(ctx, uncoded, nil); err != nil {
					return err
				}
				uncoded++
				attempt = -1
				continue
			}
			if uncoded > 0 {
				if r.uncodedFutile++; r.uncodedFutile == uncodedGiveUp {
					r.note("%d messages in a row were refused without a reason code however often they were tried: "+
						"such refusals get one more try only from now on", uncodedGiveUp)
				}
			}
			return r.fail(&j.rec, &j.ev, j.body, err)
		}
		clear(r.idx) // the append may have landed: look again before appending
		again, perr := r.again(ctx, err, attempt, r.dst.Describe()+" (checking before trying again)")
		if perr != nil {
			return perr
		}
		if !again {
			return &stopError{err}
		}
	}
}

// repair runs the repair stage on a message. When its content changes, the
// original is archived first and the repaired content returned; otherwise
// body itself. refusal, when set, is the server's refusal that asked for it.
func (r *runner) repair(rec *Record, ev *Event, body *Body, opts mime.RepairOptions, refusal string) (*Body, error) {
	var res mime.Repaired
	var out *Body
	if body.Size() > mime.StreamAbove {
		// Too large to hold: repaired from its spool file into another.
		sw := &spoolWriter{dir: r.opt.SpoolDir, limit: r.opt.SpoolLimit, hint: body.Size()}
		var err error
		res, err = mime.RepairTo(body.ReaderAt(), body.Size(), opts, sw)
		if errors.Is(err, mime.ErrHeaderTooLong) {
			sw.abort()
			r.noteOnce("header too long", "a message of %d bytes whose header goes on for more than a megabyte is copied as it is, not repaired", body.Size())
			return body, nil
		}
		if err == nil && res.Changed {
			out, err = sw.body()
		} else {
			sw.abort()
		}
		if err != nil {
			return nil, &stopError{fmt.Errorf("repair a spooled message in %s: %w", r.opt.SpoolDir, err)}
		}
		if !res.Changed {
			return body, nil
		}
		ev.RepairDiff = headDiff(body, out)
	} else {
		data, err := io.ReadAll(body.Open())
		if err != nil {
			return nil, &stopError{fmt.Errorf("read spooled message: %w", err)}
		}
		res = mime.Repair(data, opts)
		if !res.Changed {
			return body, nil
		}
		ev.RepairDiff = mime.HeaderDiff(data, res.Msg)
		out = BodyFromBytes(res.Msg)
	}
	if refusal != "" {
		for i := range res.Findings {
			res.Findings[i].Text += " (after the server refused it: " + refusal + ")"
		}
	}
	ev.Repairs, rec.Repairs = res.Findings, res.Codes()
	if res.Review {
		rec.Folder, ev.Folder = r.opt.ReviewFolder, r.opt.ReviewFolder
	}
	if r.opt.Archive != nil && !r.opt.DryRun && rec.Original == "" {
		path, err := r.opt.Archive.Keep(*rec, body)
		if err != nil {
			out.Release()
			return nil, &stopError{fmt.Errorf("keep the original of a repaired message: %w", err)}
		}
		rec.Original, ev.Original = path, path
	}
	return out, nil
}

// headDiff is mime.HeaderDiff for messages too large to read whole: the
// headers compared, the bodies by size.
func headDiff(before, after *Body) []string {
	head := func(b *Body) []byte {
		p := &mime.Probe{}
		io.Copy(p, io.LimitReader(b.Open(), 1<<20))
		return p.Header()
	}
	hb, ha := head(before), head(after)
	var out []string
	for _, l := range mime.HeaderDiff(hb, ha) {
		if !strings.HasPrefix(l, "body:") {
			out = append(out, l)
		}
	}
	if bb, ab := before.Size()-int64(len(hb)), after.Size()-int64(len(ha)); bb != ab {
		out = append(out, fmt.Sprintf("body: %d bytes before, %d after", bb, ab))
	}
	return out
}

// describe fills in what the record and the event say of the content to be
// sent: its fingerprint, size and identity at the destination.
func (r *runner) describe(rec *Record, ev *Event, send *Body, h mime.Header, fp string) {
	if len(rec.Repairs) > 0 {
		// Read as it streams: a repaired message may be a large file.
		f, p := mime.NewFingerprinter(), &mime.Probe{}
		io.Copy(io.MultiWriter(f, p), send.Open())
		h, fp = mime.ParseHeader(p.Header()), f.Sum().String()
	}
	rec.Fingerprint, rec.Key, rec.Size, rec.MessageID = fp, IndexKey(h), send.Size(), mime.MessageID(h)
	ev.Fingerprint, ev.Size, ev.MessageID = fp, send.Size(), rec.MessageID
	subject, err := r.words.DecodeHeader(h.Get("Subject"))
	if err != nil {
		subject = h.Get("Subject")
	}
	ev.Subject = subject
}

// repairFor reads a server's refusal and returns the repair options that
// answer it, and whether they add anything to opts.
func repairFor(refusal string, opts mime.RepairOptions) (mime.RepairOptions, bool) {
	s := strings.ToLower(refusal)
	more := opts
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(s, w) {
				return true
			}
		}
		return false
	}
	if has("8bit", "8-bit", "non-ascii", "non ascii", "utf8", "utf-8", "invalid character", "header") {
		more.EncodeHeaders = true
	}
	if has("line too long", "line length", "lines longer", "long line", "998") {
		more.FoldLines = true
	}
	if has("eof", "boundary", "multipart", "mime") {
		more.CloseParts = true
	}
	if has("parse", "malformed", "invalid message", "syntax", "rfc 5322", "rfc5322", "rfc 822") {
		more.EncodeHeaders, more.FoldLines, more.CloseParts = true, true, true
	}
	return more, more != opts
}

// copy decides and, if needed, appends one message. attempt > 0 means an
// earlier append of the same message may have reached the server.
func (r *runner) copy(ctx context.Context, j *job, attempt int) error {
	rec, ev, body := &j.rec, &j.ev, j.send
	settled, err := r.prepare(ctx, j, attempt)
	if settled || err != nil {
		return err
	}
	rec.State, rec.At, rec.Reason = Pending, r.opt.Now(), ""
	if err := r.put(*rec); err != nil {
		return err
	}
	// The message in flight is finished even when the user interrupts: its
	// outcome is then recorded, not left for the next run to reconcile.
	app, err := r.dst.Append(context.WithoutCancel(ctx), rec.Folder, Outgoing{Body: body, Flags: rec.Flags, Date: rec.Date})
	if err != nil {
		return err
	}
	r.readBack(ctx, []*job{j}, []Appended{app})
	return r.copied(rec, ev, app)
}

// prepare decides whether a message is to be appended: it may be a
// duplicate of one already copied, or already at the destination (settled
// then), or too big. It readies the folder and the flags to send.
func (r *runner) prepare(ctx context.Context, j *job, attempt int) (settled bool, err error) {
	rec, ev, flags := &j.rec, &j.ev, j.flags
	box, err := r.mailbox(ctx, rec.Folder)
	if err != nil {
		return false, err
	}
	rec.Folder, ev.Folder, rec.UIDValidity, rec.Floor = box.Name, box.Name, box.UIDValidity, box.UIDNext
	if !r.opt.KeepDuplicates && attempt == 0 {
		other, ok := r.claimed[claimKey(box.Name, rec.Fingerprint)]
		if !ok {
			other, ok, err = r.cp.ByFingerprint(box.Name, rec.Fingerprint)
			if err != nil {
				return false, &stopError{fmt.Errorf("read state: %w", err)}
			}
		}
		if ok && other != rec.ID {
			return true, r.settle(rec, ev, Duplicate, ActDuplicate, 0, "same content as "+other+", already in "+box.Name)
		}
	}
	if !r.opt.KeepDuplicates || attempt > 0 {
		uid, found, err := r.lookup(ctx, box.Name, rec.Key, rec.MessageID != "", rec.Size, rec.Fingerprint)
		if err != nil {
			return false, err
		}
		for _, f := range j.forms {
			if found || attempt > 0 {
				break // after a lost reply, only what was sent is looked for
			}
			if uid, found, err = r.lookup(ctx, box.Name, f.key, f.hasMID, f.size, f.fp); err != nil {
				return false, err
			}
		}
		if found {
			if attempt > 0 {
				r.sum.Bytes += rec.Size
				return true, r.settle(rec, ev, Copied, r.copiedAction(), uid, "confirmed at the destination after a lost reply")
			}
			return true, r.settle(rec, ev, Present, ActPresent, uid, "already in "+box.Name)
		}
		if j.natural != "" && attempt == 0 {
			if nat, err := r.existing(ctx, j.natural); err == nil && nat.Exists && nat.Name != box.Name {
				if uid, found, err = r.lookup(ctx, nat.Name, rec.Key, rec.MessageID != "", rec.Size, rec.Fingerprint); err != nil {
					return false, err
				}
				if found {
					rec.Folder, ev.Folder, rec.UIDValidity, rec.Floor = nat.Name, nat.Name, nat.UIDValidity, nat.UIDNext
					return true, r.settle(rec, ev, Present, ActPresent, uid,
						fmt.Sprintf("already in %s (put there before; its spam verdict would have put it in %s): left there, not doubled", nat.Name, box.Name))
				}
			}
		}
	}
	if box.AppendLimit > 0 && rec.Size > box.AppendLimit {
		return false, &Permanent{Err: fmt.Errorf("%d bytes, more than the %d the server accepts (APPENDLIMIT): not truncated", rec.Size, box.AppendLimit)}
	}
	perm := box.Permanent
	if box.FlagsUnknown || !box.Exists {
		// A dry-run cannot know: assume keywords are kept, as most servers
		// do; the real run drops (and reports) what the server refuses.
		perm = []string{`\*`}
	}
	kept, dropped := SanitizeFlags(flags, perm)
	ev.Flags, ev.Dropped, rec.Flags = kept, dropped, kept
	return false, nil
}

// countVerdict counts the spam verdict of a message that has its outcome.
func (r *runner) countVerdict(id string) {
	if k, ok := r.verdictOf[id]; ok {
		r.sum.Verdicts[k]++
		delete(r.verdictOf, id)
	}
}

// copied records a message the server confirmed.
func (r *runner) copied(rec *Record, ev *Event, app Appended) error {
	if app.UIDValidity != 0 {
		rec.UIDValidity = app.UIDValidity
	}
	r.sum.Bytes += rec.Size
	for _, c := range rec.Repairs {
		r.sum.Repairs[c]++
	}
	reason := ""
	if rec.Altered != "" {
		reason = "stored altered by the server: " + rec.Altered
	}
	return r.settle(rec, ev, Copied, r.copiedAction(), app.UID, reason)
}

func (r *runner) copiedAction() Action {
	if r.opt.DryRun {
		return ActWouldCopy
	}
	return ActCopied
}

func (r *runner) settle(rec *Record, ev *Event, st State, act Action, uid uint32, reason string) error {
	rec.State, rec.UID, rec.Reason, rec.At = st, uid, reason, r.opt.Now()
	if err := r.stage(*rec); err != nil {
		return err
	}
	r.countVerdict(rec.ID)
	if strings.HasPrefix(rec.ID, "fp:") {
		// Only a message named by its content can come up again in the
		// same run (an identical copy); remembering the others would cost
		// memory for nothing at 100,000 messages.
		r.done[rec.ID] = st
		r.settledNow[rec.ID] = true
	}
	switch st {
	case Copied:
		r.sum.Copied++
	case Present:
		r.sum.Present++
	case Duplicate:
		r.sum.Duplicates++
	}
	ev.Action, ev.UID, ev.Reason = act, uid, reason
	r.emit(*ev)
	return nil
}

// fail records a message the destination refused and keeps it locally.
func (r *runner) fail(rec *Record, ev *Event, body *Body, cause error) error {
	rec.State, rec.Reason, rec.At = Failed, cause.Error(), r.opt.Now()
	if r.opt.Keep != nil && !r.opt.DryRun && body != nil {
		path, err := r.opt.Keep.Keep(*rec, body)
		if err != nil {
			return &stopError{fmt.Errorf("keep refused message locally: %w", err)}
		}
		rec.Reason += "; kept in " + path
	}
	if err := r.stage(*rec); err != nil {
		return err
	}
	r.countVerdict(rec.ID)
	r.sum.Failed++
	ev.Action, ev.Reason = ActFailed, rec.Reason
	r.emit(*ev)
	return nil
}

// existing is mailbox for a folder that is only looked into: one that is
// not there is not created.
func (r *runner) existing(ctx context.Context, name string) (MailboxInfo, error) {
	if box, ok := r.boxes[name]; ok {
		return box, nil
	}
	box, err := r.dst.Mailbox(ctx, name, false)
	if err == nil && box.Exists {
		r.boxes[name] = box
	}
	return box, err
}

func (r *runner) mailbox(ctx context.Context, name string) (MailboxInfo, error) {
	if box, ok := r.boxes[name]; ok {
		return box, nil
	}
	if err := r.boxErr[name]; err != nil {
		return MailboxInfo{}, err
	}
	box, err := r.dst.Mailbox(ctx, name, true)
	var ferr *FolderError
	if errors.As(err, &ferr) {
		// Asked once per run: its messages fail with the server's words,
		// the other folders go on.
		err = &Permanent{Err: err}
		r.boxErr[name] = err
		r.note("%s will not have folder %q (%v): the messages meant for it are not copied; "+
			"--folder-map or --junk-folder can send them elsewhere", r.dst.Describe(), name, ferr.Err)
	}
	if err != nil {
		return box, err
	}
	if box.Created {
		r.note("created folder %q at %s", box.Name, r.dst.Describe())
	} else if !box.Exists {
		r.note("folder %q would be created at %s", box.Name, r.dst.Describe())
	}
	r.boxes[name] = box
	return box, nil
}

func (r *runner) lookup(ctx context.Context, folder, key string, hasMID bool, size int64, fp string) (uint32, bool, error) {
	ix := r.idx[folder]
	if ix == nil {
		var err error
		if ix, err = buildIndex(ctx, r.dst, folder); err != nil {
			return 0, false, err
		}
		r.idx[folder] = ix
	} else if r.opt.SharedDestination && time.Since(ix.read) > 2*time.Second {
		// Another run copies into the same account now: what it appended
		// since is looked for too, read a few seconds at a time.
		if err := ix.refresh(ctx, r.dst, folder); err != nil {
			return 0, false, err
		}
	}
	return ix.find(ctx, r.dst, folder, key, hasMID, size, fp)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
