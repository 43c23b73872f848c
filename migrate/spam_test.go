package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/store"
)

// verdictMsg is a message delivered by provider.net with its filter's
// verdict above the inbound Received: line.
func verdictMsg(i int, spam bool) string {
	v := "No"
	if spam {
		v = "Yes"
	}
	return fmt.Sprintf("Received: from mx1.provider.net (mx1.provider.net [198.51.100.1]) by store.provider.net; Mon, 1 Jan 2024 10:00:00 +0000\r\n"+
		"X-Spam: %s\r\n"+
		"Received: from mail.sender.example (mail.sender.example [203.0.113.9]) by mx1.provider.net; Mon, 1 Jan 2024 10:00:00 +0000\r\n"+
		"From: a@sender.example\r\nSubject: message %d\r\nMessage-ID: <%d@sender.example>\r\n\r\nbody %d\r\n", v, i, i, i)
}

// cancelAfter cancels a run after n messages.
type cancelAfter struct {
	migrate.NopObserver
	n      int
	cancel func()
}

func (c *cancelAfter) Message(migrate.Event) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
}

// TestSpamGuardOverResume: the guard counts the whole folder, the messages
// an interrupted run already copied included, so a resumed run decides as
// the first did.
func TestSpamGuardOverResume(t *testing.T) {
	var msgs []string
	for i := 0; i < 40; i++ {
		msgs = append(msgs, verdictMsg(i, i < 25))
	}
	e := newEnv(t, msgs)
	ctx, cancel := context.WithCancel(context.Background())
	sum, err := migrate.Run(ctx, e.src, e.dst, e.state, migrate.Options{Backoff: time.Millisecond, Observer: &cancelAfter{n: 10, cancel: cancel}})
	if err == nil || len(sum.Guarded) != 1 {
		t.Fatalf("first run: %v, guarded %q", err, sum.Guarded)
	}
	sum = e.run(t, nil)
	if len(sum.Guarded) != 1 || !slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, "mark 25 of 40 messages (62%)") }) {
		t.Fatalf("resumed run: guarded %q, notes %q", sum.Guarded, sum.Notes)
	}
	if got := len(e.inbox(t)); got != 40 {
		t.Errorf("INBOX holds %d, want all 40: the guard keeps spam-by-header in place", got)
	}
}

// TestSpamSmallFolderNotGuarded: below GuardMin messages, header verdicts
// are acted on however many they are.
func TestSpamSmallFolderNotGuarded(t *testing.T) {
	e := newEnv(t, []string{verdictMsg(1, true), verdictMsg(2, true), verdictMsg(3, false)})
	sum := e.run(t, nil)
	if len(sum.Guarded) != 0 || sum.JunkFolder != "Junk" {
		t.Fatalf("guarded %q, junk folder %q", sum.Guarded, sum.JunkFolder)
	}
	if got := len(e.inbox(t)); got != 1 {
		t.Errorf("INBOX holds %d, want the one ham message", got)
	}
}

// keywordSource is a source whose one message carries both junk keywords.
type keywordSource struct{ flags []string }

func (s keywordSource) List(context.Context) ([]migrate.Entry, error) {
	return []migrate.Entry{{ID: "k1", Size: 40}}, nil
}

func (s keywordSource) Retrieve(ctx context.Context, es []migrate.Entry, fn func(*migrate.Incoming) error) error {
	for _, e := range es {
		if err := fn(&migrate.Incoming{Entry: e, R: strings.NewReader("Subject: k\r\nMessage-ID: <k@x>\r\n\r\nbody\r\n"), Flags: s.flags}); err != nil {
			return err
		}
	}
	return nil
}

func (keywordSource) Describe() string { return "keywords" }
func (keywordSource) Close() error     { return nil }

// recorder keeps the events of a run.
type recorder struct {
	migrate.NopObserver
	events []migrate.Event
}

func (r *recorder) Message(ev migrate.Event) { r.events = append(r.events, ev) }

func TestJunkKeywordsNeverBoth(t *testing.T) {
	for _, tc := range []struct {
		flags  []string
		want   string
		folder string
	}{
		{[]string{`\Seen`, "NonJunk", "$Junk"}, "$NotJunk", "INBOX"},
		{[]string{"Junk", "$NotJunk"}, "$Junk", "Junk"},
	} {
		e := newEnv(t, nil)
		rec := &recorder{}
		_, err := migrate.Run(context.Background(), keywordSource{tc.flags}, e.dst, e.state, migrate.Options{Observer: rec})
		if err != nil {
			t.Fatal(err)
		}
		ev := rec.events[0]
		junky := 0
		for _, f := range ev.Flags {
			if strings.Contains(strings.ToLower(f), "junk") {
				junky++
			}
		}
		if junky != 1 || !slices.Contains(ev.Flags, tc.want) || ev.Folder != tc.folder {
			t.Errorf("%v: flags %v in %s, want only %s, in %s", tc.flags, ev.Flags, ev.Folder, tc.want, tc.folder)
		}
	}
}

// TestSpamGuardCountsReconciled: messages an interrupted run left pending
// and the next run finds at the destination count for the guard with their
// recorded verdicts, as messages done do.
func TestSpamGuardCountsReconciled(t *testing.T) {
	var msgs []string
	for i := 0; i < 40; i++ {
		msgs = append(msgs, verdictMsg(i, i < 25))
	}
	e := newEnv(t, msgs)
	for i := 0; i < 20; i++ { // spam, copied to INBOX before a kill
		m := []byte(msgs[i])
		if _, err := e.dst.Append(context.Background(), "INBOX", migrate.Outgoing{Body: migrate.BodyFromBytes(m)}); err != nil {
			t.Fatal(err)
		}
		e.state.Put(migrate.Record{ID: fmt.Sprintf("uidl:m%d", i), State: migrate.Pending, Folder: "INBOX", Size: int64(len(m)),
			Fingerprint: fpOf(m), Key: keyOf(m), MessageID: fmt.Sprintf("%d@sender.example", i), Verdict: "spam", Basis: "header"})
	}
	sum := e.run(t, nil)
	if sum.Reconciled != 20 || !slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, "mark 25 of 40 messages") }) {
		t.Fatalf("reconciled %d, notes %q", sum.Reconciled, sum.Notes)
	}
}

// TestSpamAlreadyInInbox: spam a tool without a junk folder already put in
// INBOX is found there, not doubled in Junk.
func TestSpamAlreadyInInbox(t *testing.T) {
	e := newEnv(t, []string{verdictMsg(1, true), verdictMsg(2, true), verdictMsg(3, false)})
	sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Spam: migrate.SpamIgnore, Run: "other-tool"})
	if err != nil || len(e.inbox(t)) != 3 {
		t.Fatalf("first run: %+v %v", sum, err)
	}
	fresh, err := store.Open(filepath.Join(t.TempDir(), "state.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	sum, err = migrate.Run(context.Background(), e.src, e.dst, fresh, migrate.Options{Run: "mailmove"})
	if err != nil || sum.Copied != 0 || sum.Present != 3 {
		t.Fatalf("second run: copied %d, present %d (%v)", sum.Copied, sum.Present, err)
	}
	if n := len(e.inbox(t)); n != 3 {
		t.Errorf("INBOX holds %d, want 3", n)
	}
	if box, err := e.dst.Mailbox(context.Background(), "Junk", false); err == nil && box.Exists && box.UIDNext > 1 {
		t.Errorf("Junk received messages: %+v", box)
	}
}
