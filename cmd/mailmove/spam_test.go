package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate"
)

// hasFlag reports whether a stored message carries flag.
func hasFlag(s stored, flag string) bool {
	for _, f := range s.flags {
		if strings.EqualFold(string(f), flag) {
			return true
		}
	}
	return false
}

// split returns the messages labelled spam and the others.
func split(msgs [][]byte, spam []bool) (junk, ham [][]byte) {
	for i, m := range msgs {
		if spam[i] {
			junk = append(junk, m)
		} else {
			ham = append(ham, m)
		}
	}
	return junk, ham
}

// TestSpamRoutePOP3 migrates an Orange-style POP3 mailbox where the
// provider's filter marked a third of the mail as spam and some senders
// forged spam headers: every spam message ends in the \Junk folder flagged
// $Junk, every ham message in INBOX flagged $NotJunk, and forged headers
// change nothing.
func TestSpamRoutePOP3(t *testing.T) {
	msgs, spam := mailgen.Labelled(mailgen.Options{Seed: 71, Count: 2000, MaxAttach: 20 << 10, Spam: 0.33, Forged: 0.1})
	junk, ham := split(msgs, spam)
	p := newPair(t, msgs)
	report := filepath.Join(t.TempDir(), "dry.json")

	sum, out, err := p.runMain(t, p.args("--dry-run", "--report", report)...)
	if err != nil {
		t.Fatalf("dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		`junk folder: "Junk" (the destination's \Junk folder); spam policy: route`,
		"[spam: X-me-spamlevel: high (Orange/Wanadoo/La Poste); not the known ham value",
		"[ham: X-me-spamlevel: not-spam (Orange/Wanadoo/La Poste)]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if got := sum.Verdicts["spam (header X-me-spamlevel)"]; got != len(junk) {
		t.Errorf("dry-run: %d spam verdicts, want %d (%v)", got, len(junk), sum.Verdicts)
	}
	var rep struct {
		Messages []migrate.Event `json:"messages"`
		Summary  migrate.Summary `json:"summary"`
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	routed := 0
	for _, ev := range rep.Messages {
		if ev.Folder == "Junk" {
			routed++
			if ev.Verdict != "spam" || !slices.Contains(ev.Flags, "$Junk") {
				t.Errorf("report: %s would go to Junk with verdict %q flags %v", ev.ID, ev.Verdict, ev.Flags)
			}
		}
	}
	if routed != len(junk) || rep.Summary.Verdicts["ham (header X-me-spamlevel)"] != len(ham) {
		t.Errorf("report: %d routed to Junk (want %d), verdicts %v", routed, len(junk), rep.Summary.Verdicts)
	}

	sum, out, err = p.runMain(t, p.args()...)
	if err != nil || sum.Copied != len(msgs) {
		t.Fatalf("run: %+v %v\n%s", sum, err, out)
	}
	gotJunk := p.fetchAll(t, p.dst, "Junk")
	gotInbox := p.fetchAll(t, p.dst, "INBOX")
	checkExactlyOnce(t, junk, gotJunk)
	checkExactlyOnce(t, ham, gotInbox)
	for _, s := range gotJunk {
		if !hasFlag(s, "$Junk") || hasFlag(s, "$NotJunk") {
			t.Fatalf("a message in Junk has flags %v", s.flags)
		}
	}
	for _, s := range gotInbox {
		if !hasFlag(s, "$NotJunk") || hasFlag(s, "$Junk") {
			t.Fatalf("a message in INBOX has flags %v", s.flags)
		}
	}
	t.Logf("%d spam in Junk, %d ham in INBOX; verdicts %v", len(gotJunk), len(gotInbox), sum.Verdicts)
}

// TestSpamGuard migrates a mailbox where the filter marked everything as
// spam (Orange, August 2025): nothing is routed to junk on headers alone,
// the run says so loudly, and --spam-trust-headers routes it anyway.
func TestSpamGuard(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 72, Count: 120, MaxAttach: 10 << 10, Spam: 1})
	p := newPair(t, msgs)
	sum, out, err := p.runMain(t, p.args("--dry-run")...)
	if err != nil || !strings.Contains(out, "WARNING: spam filter headers mark 120 of 120 messages (100%) of the source mailbox as spam") {
		t.Fatalf("dry-run: %v, no guard warning:\n%s", err, out)
	}
	sum, out, err = p.runMain(t, append(p.args(), "-v")...)
	if err != nil || sum.Copied != len(msgs) || len(sum.Guarded) != 1 {
		t.Fatalf("run: %+v %v\n%s", sum, err, out)
	}
	if !strings.Contains(out, "WARNING") {
		t.Errorf("the real run does not warn:\n%s", out)
	}
	inbox := p.fetchAll(t, p.dst, "INBOX")
	checkExactlyOnce(t, msgs, inbox)
	for _, s := range inbox {
		if hasFlag(s, "$Junk") {
			t.Fatalf("flagged $Junk on headers alone: %v", s.flags)
		}
	}
	if got := p.fetchAll(t, p.dst, "Junk"); len(got) != 0 {
		t.Fatalf("%d messages routed to Junk despite the guard", len(got))
	}

	q := newPair(t, msgs)
	sum, out, err = q.runMain(t, q.args("--spam-trust-headers")...)
	if err != nil || sum.Copied != len(msgs) || len(sum.Guarded) != 0 {
		t.Fatalf("--spam-trust-headers: %+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, msgs, q.fetchAll(t, q.dst, "Junk"))
}

// TestSpamFlagPolicy keeps spam in its folder with $Junk; --junk-folder and
// ignore are checked on the same mailbox.
func TestSpamFlagPolicy(t *testing.T) {
	msgs, spam := mailgen.Labelled(mailgen.Options{Seed: 73, Count: 90, MaxAttach: 10 << 10, Spam: 0.3})
	junk, _ := split(msgs, spam)

	p := newPair(t, msgs)
	if sum, out, err := p.runMain(t, p.args("--spam", "flag")...); err != nil || sum.Copied != len(msgs) {
		t.Fatalf("flag: %+v %v\n%s", sum, err, out)
	}
	inbox := p.fetchAll(t, p.dst, "INBOX")
	checkExactlyOnce(t, msgs, inbox)
	flagged := 0
	for _, s := range inbox {
		if hasFlag(s, "$Junk") {
			flagged++
		}
	}
	if flagged != len(junk) {
		t.Errorf("flag: %d flagged $Junk, want %d", flagged, len(junk))
	}

	q := newPair(t, msgs)
	if sum, out, err := q.runMain(t, q.args("--junk-folder", "Quarantaine/Spam")...); err != nil || sum.JunkFolder != "Quarantaine/Spam" {
		t.Fatalf("--junk-folder: %+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, junk, q.fetchAll(t, q.dst, "Quarantaine/Spam"))

	r := newPair(t, msgs)
	if sum, out, err := r.runMain(t, r.args("--spam", "ignore")...); err != nil || sum.Copied != len(msgs) {
		t.Fatalf("ignore: %+v %v\n%s", sum, err, out)
	}
	for _, s := range r.fetchAll(t, r.dst, "INBOX") {
		if hasFlag(s, "$Junk") || hasFlag(s, "$NotJunk") {
			t.Fatalf("ignore: flags %v", s.flags)
		}
	}
}
