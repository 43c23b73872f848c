package migrate_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
)

var errLocked = errors.New("append to INBOX: server said NO CreateMessage (uidNext): database is locked")

// lockingServer refuses, without a response code, the appends of a pipe of
// more than one connection, as maddy's sqlite storage does under parallel
// appends; over one connection everything goes through.
type lockingServer struct {
	migrate.Destination
	mu     sync.Mutex
	pipes  []int // connections asked for, in order
	always bool  // refuse over one connection too
}

func (l *lockingServer) Pipe(n int) migrate.Pipe {
	l.mu.Lock()
	l.pipes = append(l.pipes, n)
	l.mu.Unlock()
	return &lockingPipe{l: l, n: n}
}

type lockingPipe struct {
	l  *lockingServer
	n  int
	wg sync.WaitGroup
	mu sync.Mutex // one batch at a time on the underlying destination
}

func (p *lockingPipe) Send(_ context.Context, folder string, msgs []migrate.Outgoing, done func([]migrate.AppendResult)) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		res := make([]migrate.AppendResult, len(msgs))
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, m := range msgs {
			if p.n > 1 || p.l.always {
				res[i].Err = &migrate.Permanent{Err: errLocked, Uncoded: true}
				continue
			}
			res[i].Appended, res[i].Err = p.l.Destination.Append(context.Background(), folder, m)
		}
		done(res)
	}()
}

func (p *lockingPipe) Close() error { p.wg.Wait(); return nil }

// TestUncodedRefusalsShrinkConnections: refusals without a reason while
// several connections append halve the connections until they stop, and
// every message arrives; none is quarantined.
func TestUncodedRefusalsShrinkConnections(t *testing.T) {
	var msgs []string
	for i := 0; i < 500; i++ {
		msgs = append(msgs, msg(i%50, true)+strings.Repeat("y", i))
	}
	e := newEnv(t, msgs)
	d := &lockingServer{Destination: e.dst}
	sum, err := migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{
		Connections: 4, Backoff: time.Millisecond, Run: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Copied != 500 || sum.Failed != 0 {
		t.Fatalf("copied %d, failed %d", sum.Copied, sum.Failed)
	}
	if got := len(d.pipes); got != 3 || d.pipes[0] != 4 || d.pipes[1] != 2 || d.pipes[2] != 1 {
		t.Fatalf("connections asked for: %v, want [4 2 1]", d.pipes)
	}
	if got := len(e.inbox(t)); got != 500 {
		t.Fatalf("INBOX holds %d", got)
	}
}

// flaky refuses without a reason code: messages whose subject says
// "always" every time, the others the first time only.
type flaky struct {
	migrate.Destination
	mu    sync.Mutex
	tries map[string]int
}

func (f *flaky) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	b, _ := io.ReadAll(m.Body.Open())
	s := string(b)
	f.mu.Lock()
	f.tries[s]++
	n := f.tries[s]
	f.mu.Unlock()
	if strings.Contains(s, "always") || n == 1 {
		return migrate.Appended{}, &migrate.Permanent{Err: errLocked, Uncoded: true}
	}
	return f.Destination.Append(ctx, folder, m)
}

// TestUncodedRefusalRetried: an uncoded NO is tried again, a few times; a
// message refused every time ends in the quarantine, and after three such
// messages in a row the next get one retry only (the server seems to mean
// it), which is still enough for one refused only once.
func TestUncodedRefusalRetried(t *testing.T) {
	msgs := []string{msg(1, true), msg(2, true)}
	for i := 0; i < 5; i++ {
		msgs = append(msgs, strings.Replace(msg(10+i, true), "body", "always refused", 1))
	}
	msgs = append(msgs, msg(3, true))
	e := newEnv(t, msgs)
	d := &flaky{Destination: e.dst, tries: map[string]int{}}
	sum, err := migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{
		Backoff: time.Millisecond, Run: "test", Keep: migrate.DirKeeper{Dir: t.TempDir()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Copied != 3 || sum.Failed != 5 {
		t.Fatalf("copied %d, failed %d", sum.Copied, sum.Failed)
	}
	var always []int
	for s, n := range d.tries {
		if strings.Contains(s, "always") {
			always = append(always, n)
		} else if n != 2 {
			t.Errorf("a message refused once was tried %d times", n)
		}
	}
	total := 0
	for _, n := range always {
		total += n
	}
	if total != 3*3+2*2 {
		t.Errorf("the 5 always-refused messages were tried %v times (want 3 each for the first 3, then 2)", always)
	}
}

// TestUncodedRefusalsToMainConnection: a server that cannot take even one
// append connection beside the main one ends with every message sent over
// the main connection, none lost.
func TestUncodedRefusalsToMainConnection(t *testing.T) {
	var msgs []string
	for i := 0; i < 300; i++ {
		msgs = append(msgs, msg(i%50, true)+strings.Repeat("z", i))
	}
	e := newEnv(t, msgs)
	d := &lockingServer{Destination: e.dst}
	d.always = true
	sum, err := migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{
		Connections: 2, Backoff: time.Millisecond, Run: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Copied != 300 || sum.Failed != 0 || len(d.pipes) != 2 {
		t.Fatalf("copied %d, failed %d, pipes %v", sum.Copied, sum.Failed, d.pipes)
	}
}

// twoFolders sends odd-numbered messages to "Other", the rest to INBOX.
type twoFolders struct{ migrate.Source }

func (s twoFolders) Retrieve(ctx context.Context, es []migrate.Entry, fn func(*migrate.Incoming) error) error {
	return s.Source.Retrieve(ctx, es, func(in *migrate.Incoming) error {
		if in.Num%2 == 1 {
			in.Dest = "Other"
		}
		return fn(in)
	})
}

// quickRefuser's pipe refuses every message without a reason code and
// reports before Send returns, as a batch that fails at once does; the main
// connection stores them.
type quickRefuser struct{ migrate.Destination }

func (q *quickRefuser) Pipe(n int) migrate.Pipe { return quickPipe{} }

type quickPipe struct{}

func (quickPipe) Send(_ context.Context, folder string, msgs []migrate.Outgoing, done func([]migrate.AppendResult)) {
	res := make([]migrate.AppendResult, len(msgs))
	for i := range res {
		res[i].Err = &migrate.Permanent{Err: errLocked, Uncoded: true}
	}
	done(res)
}
func (quickPipe) Close() error { return nil }

// TestShrinkKeepsFormingBatches: when the last append connection is given
// up with no batch in flight, the batches other folders were forming still
// go, over the main connection, and every message has its outcome.
func TestShrinkKeepsFormingBatches(t *testing.T) {
	var msgs []string
	for i := 0; i < 220; i++ {
		msgs = append(msgs, msg(i%50, true)+strings.Repeat("q", i))
	}
	e := newEnv(t, msgs)
	sum, err := migrate.Run(context.Background(), twoFolders{e.src}, &quickRefuser{e.dst}, e.state, migrate.Options{
		Connections: 1, Backoff: time.Millisecond, Run: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Copied != 220 || sum.Failed != 0 {
		t.Fatalf("copied %d, failed %d of 220", sum.Copied, sum.Failed)
	}
	if got := len(e.inbox(t)); got != 110 {
		t.Fatalf("INBOX holds %d, want 110", got)
	}
}
