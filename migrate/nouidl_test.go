package migrate_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
)

// TestMissingWithoutUIDL: from a POP3 server without UIDL (messages named
// by content, "fp:..."), a message deleted at the destination after the
// copy is reported missing, not counted as already done.
func TestMissingWithoutUIDL(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true), msg(3, true)})
	e.pop.NoUIDL = true
	if sum := e.run(t, nil); sum.Copied != 3 {
		t.Fatalf("first run: %+v", sum)
	}
	// Delete message 2 at the destination.
	var uids []uint32
	e.dst.Scan(context.Background(), "INBOX", 0, func(x migrate.Existing) error { uids = append(uids, x.UID); return nil })
	box, _ := e.dst.Mailbox(context.Background(), "INBOX", false)
	if err := e.dst.Remove(context.Background(), "INBOX", box.UIDValidity, uids[1:2]); err != nil {
		t.Fatal(err)
	}
	sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Backoff: time.Millisecond, Run: "test2"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Missing != 1 || sum.AlreadyDone != 2 || sum.Copied != 0 {
		t.Errorf("missing %d, already done %d, copied %d; want 1, 2, 0", sum.Missing, sum.AlreadyDone, sum.Copied)
	}
}

// noUIDPlus appends without learning UIDs, as a server without UIDPLUS
// (maddy) makes mailmove do, and over the main connection only.
type noUIDPlus struct{ migrate.Destination }

func (n noUIDPlus) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	a, err := n.Destination.Append(ctx, folder, m)
	a.UID, a.UIDValidity = 0, 0
	return a, err
}

// TestMissingWithoutUIDPlus: messages copied to a server without UIDPLUS
// have no UID in the state; one deleted there afterwards is still found
// missing (by its Message-ID, in a header pass), reported, and copied
// again with RecopyMissing.
func TestMissingWithoutUIDPlus(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true), msg(3, false)})
	d := noUIDPlus{e.dst}
	if sum := e.run(t, d); sum.Copied != 3 {
		t.Fatalf("first run: %+v", sum)
	}
	for _, i := range []int{1, 2} { // one with a Message-ID, one without
		var uids []uint32
		e.dst.Scan(context.Background(), "INBOX", 0, func(x migrate.Existing) error { uids = append(uids, x.UID); return nil })
		box, _ := e.dst.Mailbox(context.Background(), "INBOX", false)
		if err := e.dst.Remove(context.Background(), "INBOX", box.UIDValidity, uids[i-1:i]); err != nil {
			t.Fatal(err)
		}
		sum, err := migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{Backoff: time.Millisecond, Run: "again"})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Missing != 1 || sum.AlreadyDone != 2 || sum.Confirmed != 2 {
			t.Fatalf("message %d deleted: missing %d, already done %d, confirmed %d; want 1, 2, 2", i, sum.Missing, sum.AlreadyDone, sum.Confirmed)
		}
		sum, err = migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{Backoff: time.Millisecond, Run: "recopy", RecopyMissing: true})
		if err != nil || sum.Copied != 1 || sum.Missing != 0 {
			t.Fatalf("recopy: copied %d, missing %d (%v)", sum.Copied, sum.Missing, err)
		}
	}
}

// TestSharedUIDL: two messages with one UIDL (popa3d makes them of the
// headers) are both named by their content, so that neither inherits the
// other's record: once the first has left the server, the second, alone
// with that UIDL now, is not taken as done without being looked for.
func TestSharedUIDL(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true), msg(3, true)})
	e.pop.Messages[1].UID = e.pop.Messages[0].UID
	rec := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Backoff: time.Millisecond, Run: "one", Observer: rec})
	if err != nil || sum.Copied != 3 {
		t.Fatalf("first run: %+v %v", sum, err)
	}
	named := 0
	for _, ev := range rec.events {
		if strings.HasPrefix(ev.ID, "fp:") {
			named++
		}
	}
	if named != 2 || !slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, "same UIDL to several messages, 2 in all") }) {
		t.Errorf("%d message(s) named by content, notes %q", named, sum.Notes)
	}
	// verify names them by content too; --delete-after-verify leaves
	// them (no number of theirs holds from one session to the next).
	v, err := migrate.Verify(context.Background(), e.src, e.dst, e.state)
	if err != nil || !v.Complete() || v.Verified != 3 {
		t.Fatalf("verify: %d verified, missing %+v (%v)", v.Verified, v.Missing, err)
	}
	v, todo, err := migrate.DeleteVerified(context.Background(), e.src, e.dst, e.state, 50, true)
	if err != nil || len(todo) != 1 || todo[0].ID != "uidl:m2" || len(v.Stay) != 2 {
		t.Fatalf("delete after verify would delete %+v, leave %+v (%v)", todo, v.Stay, err)
	}
	e.pop.Messages = e.pop.Messages[1:] // the first leaves the server
	sum, err = migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Backoff: time.Millisecond, Run: "two"})
	// The second is found by its content: recorded under the other name
	// (a duplicate of that record) or at the destination; never copied.
	if err != nil || sum.Copied != 0 || sum.Present+sum.AlreadyDone+sum.Duplicates != 2 {
		t.Fatalf("second run: copied %d, present %d, already done %d, duplicates %d (%v)", sum.Copied, sum.Present, sum.AlreadyDone, sum.Duplicates, err)
	}
	if slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, "same UIDL") }) {
		t.Errorf("a note of the first listing is said again: %q", sum.Notes)
	}
	if got := len(e.inbox(t)); got != 3 {
		t.Fatalf("INBOX holds %d, want 3", got)
	}
}

// TestIdenticalWithoutUIDL: two identical messages on a server without
// UIDL share their content name: the second is a duplicate of the first,
// not "already done" by a run that never saw it before.
func TestIdenticalWithoutUIDL(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(1, true), msg(2, true)})
	e.pop.NoUIDL = true
	sum := e.run(t, nil)
	if sum.Copied != 2 || sum.Duplicates != 1 || sum.AlreadyDone != 0 {
		t.Fatalf("copied %d, duplicates %d, already done %d; want 2, 1, 0", sum.Copied, sum.Duplicates, sum.AlreadyDone)
	}
	// Both have the one record now: done, both.
	if sum = e.run(t, nil); sum.Copied != 0 || sum.AlreadyDone != 3 {
		t.Fatalf("second run: copied %d, already done %d; want 0, 3", sum.Copied, sum.AlreadyDone)
	}
}
