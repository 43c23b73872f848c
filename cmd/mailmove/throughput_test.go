package main

import (
	"testing"

	"github.com/mailmove/mailmove/internal/mailcheck"
	"github.com/mailmove/mailmove/internal/mailgen"
)

// TestArrivalOrder: with four connections appending in parallel, and spam
// and ham going to two folders in between, each folder's UIDs follow the
// POP3 mailbox's order, so that a mail client sorting by order received
// shows the mailbox as it was.
func TestArrivalOrder(t *testing.T) {
	msgs, spam := mailgen.Labelled(mailgen.Options{Seed: 120, Count: 700, MaxAttach: 120 << 10, Spam: 0.3})
	p := newPair(t, msgs)
	sum, out, err := p.runMain(t, p.args("--connections", "4")...)
	if err != nil || sum.Copied != len(msgs) {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	for _, folder := range []string{"INBOX", "Junk"} {
		var want [][]byte
		for i, m := range msgs {
			if spam[i] == (folder == "Junk") {
				want = append(want, m)
			}
		}
		got := p.fetchAll(t, p.dst, folder)
		if len(got) != len(want) {
			t.Fatalf("%s holds %d messages, want %d", folder, len(got), len(want))
		}
		for i := range want {
			if mailcheck.Key(got[i].body) != mailcheck.Key(want[i]) {
				t.Fatalf("%s: the message at position %d is not the source's %dth of that folder", folder, i+1, i+1)
			}
		}
	}
}
