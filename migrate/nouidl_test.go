package migrate_test

import (
	"context"
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
