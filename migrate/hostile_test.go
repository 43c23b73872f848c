package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/migrate/pop3"
)

// retr2 answers RETR of the second message with serve, the rest normally.
func retr2(serve func(conn net.Conn)) func(net.Conn, int, string) bool {
	return func(conn net.Conn, _ int, cmd string) bool {
		if cmd != "RETR 2" {
			return false
		}
		serve(conn)
		return true
	}
}

func checkSecondFailed(t *testing.T, e *env, sum migrate.Summary, ev *recorder, reason string) {
	t.Helper()
	if sum.Copied != 2 || sum.Failed != 1 {
		t.Fatalf("copied %d, failed %d", sum.Copied, sum.Failed)
	}
	for _, x := range ev.events {
		if x.Action == migrate.ActFailed && (x.ID != "uidl:m1" || !strings.Contains(x.Reason, reason)) {
			t.Errorf("failed %s: %q, want message 2 with %q", x.ID, x.Reason, reason)
		}
	}
	if got := len(e.inbox(t)); got != 2 {
		t.Errorf("INBOX holds %d", got)
	}
}

// TestEndlessMessage: a message that never ends (LIST says it is small)
// fails alone at its bound, without filling the disk; the next message is
// read on a new session.
func TestEndlessMessage(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true), msg(3, true)}, retr2(func(conn net.Conn) {
		fmt.Fprint(conn, "+OK\r\n")
		line := []byte(strings.Repeat("x", 1000) + "\r\n")
		for {
			if _, err := conn.Write(line); err != nil {
				return
			}
		}
	}))
	ev := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Observer: ev, SpoolDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	checkSecondFailed(t, e, sum, ev, "sent more than")
}

// TestCutMidMessage: a server that always breaks the connection in the
// middle of the same message has that message fail alone after a few
// tries, and the others copied.
func TestCutMidMessage(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true), msg(3, true)}, retr2(func(conn net.Conn) {
		fmt.Fprint(conn, "+OK\r\nFrom: a@b\r\nSubject: half\r\n")
		conn.Close()
	}))
	ev := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Observer: ev, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkSecondFailed(t, e, sum, ev, "in the middle of this message 3 times")
}

// TestTrickledMessage: a server that sends a message a line at a time,
// never silent long enough for the idle timeout, is given the time an
// honest slow line would need for the size it announced, not all night.
func TestTrickledMessage(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true), msg(3, true)}, retr2(func(conn net.Conn) {
		fmt.Fprint(conn, "+OK\r\nSubject: slow\r\n\r\n")
		for {
			time.Sleep(50 * time.Millisecond)
			if _, err := fmt.Fprint(conn, "a line\r\n"); err != nil {
				return
			}
		}
	}))
	src := pop3.NewSource(pop3.SourceConfig{Addr: e.pop.Addr(), User: "u", Password: func() (string, error) { return "p", nil },
		Options: pop3.Options{TLSConfig: e.clientTLS, Timeout: 200 * time.Millisecond}})
	defer src.Close()
	ev := &recorder{}
	sum, err := migrate.Run(context.Background(), src, e.dst, e.state, migrate.Options{Observer: ev})
	if err != nil {
		t.Fatal(err)
	}
	checkSecondFailed(t, e, sum, ev, "took more than")
}

// TestStopMidBatch: Ctrl-C (or --until) while a batch is being sent at a
// slow --rate finishes the message in flight and stops: the rest of the
// batch is not sent (here a batch of 60 would take 12 s), the state says
// what was done, and the next run copies the rest, each message once.
func TestStopMidBatch(t *testing.T) {
	var msgs []string
	for i := 0; i < 60; i++ {
		msgs = append(msgs, msg(i, true))
	}
	e := newEnv(t, msgs)
	ctx, cancel := context.WithCancel(context.Background())
	obs := &cancelAfterNotes{cancel: cancel}
	sum, err := migrate.Run(ctx, e.src, migrate.Throttle(e.dst, 5, 0), e.state, migrate.Options{Connections: 2, Observer: obs})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	got := len(e.inbox(t))
	if got >= len(msgs) || got != sum.Copied {
		t.Fatalf("stopped with %d at the destination, %d recorded copied: the batch was not cut short", got, sum.Copied)
	}
	// The spam check counts the messages that have an outcome, not those
	// read but never sent.
	counted := 0
	for _, n := range sum.Verdicts {
		counted += n
	}
	if counted != sum.Copied+sum.Present+sum.Duplicates+sum.Failed {
		t.Errorf("spam check counts %d messages (%v), the run settled %d", counted, sum.Verdicts, sum.Copied+sum.Present+sum.Duplicates+sum.Failed)
	}
	sum = e.run(t, nil)
	if sum.Copied != len(msgs)-got || sum.Reconciled != 0 {
		t.Fatalf("next run: copied %d (want %d), reconciled %d", sum.Copied, len(msgs)-got, sum.Reconciled)
	}
	if n := len(e.inbox(t)); n != len(msgs) {
		t.Fatalf("INBOX holds %d", n)
	}
}

// cancelAfterNotes cancels a run a moment after it starts copying.
type cancelAfterNotes struct {
	migrate.NopObserver
	cancel func()
}

func (c *cancelAfterNotes) Planned(int, int64, int) { time.AfterFunc(time.Second, c.cancel) }

// TestTooLargeAnnounced: a message LIST announces as larger than allowed is
// not even downloaded: it fails alone, and the others are read in step.
func TestTooLargeAnnounced(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(5, true), msg(2, true)})
	src := pop3.NewSource(pop3.SourceConfig{Addr: e.pop.Addr(), User: "u", Password: func() (string, error) { return "p", nil },
		Options: pop3.Options{TLSConfig: e.clientTLS, Timeout: 5 * time.Second}, MaxMessage: int64(len(msg(5, true)) - 1)})
	defer src.Close()
	ev := &recorder{}
	sum, err := migrate.Run(context.Background(), src, e.dst, e.state, migrate.Options{Observer: ev})
	if err != nil {
		t.Fatal(err)
	}
	_, _, retrs := e.pop.Counts()
	checkSecondFailed(t, e, sum, ev, "more than the")
	if retrs != 2 {
		t.Errorf("%d RETR answered, want 2 (the large one not asked for)", retrs)
	}
}
