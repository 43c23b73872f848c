package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/store"
)

// TestStateOfAnotherPair: a state file used for account A is refused for
// account B (it would say "everything is at the destination" for an empty
// account), and B is left alone.
func TestStateOfAnotherPair(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 130, Count: 30, MaxAttach: 10 << 10})
	p := newPair(t, msgs)
	if code, out := p.sub(t, ""); code != exitOK {
		t.Fatalf("first: exit %d\n%s", code, out)
	}
	other, err := p.srv.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	q := *p
	q.dst = other
	code, out := q.sub(t, "")
	if code != exitUsage || !strings.Contains(out, "belongs to") || !strings.Contains(out, "Nothing was copied") {
		t.Fatalf("second pair on the same state: exit %d\n%s", code, out)
	}
	if got := q.fetchAll(t, other, "INBOX"); len(got) != 0 {
		t.Fatalf("account B holds %d", len(got))
	}
}

// TestDeletedAtDestination: a message deleted at the destination after it
// was copied is not passed over as done: the next run says so (exit 3),
// and --recopy-missing copies it again, once.
func TestDeletedAtDestination(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 131, Count: 40, MaxAttach: 10 << 10})
	p := newPair(t, msgs)
	if code, out := p.sub(t, ""); code != exitOK {
		t.Fatalf("first: exit %d\n%s", code, out)
	}
	p.expunge(t, "INBOX", 7)
	code, out := p.sub(t, "")
	if code != exitIncomplete || !strings.Contains(out, "copied earlier but no longer at the destination 1") ||
		!strings.Contains(out, "to INBOX (UID 7) but no longer there") || strings.Contains(out, "nothing to copy") {
		t.Fatalf("after a deletion: exit %d\n%s", code, out)
	}
	code, out = p.sub(t, "", "--recopy-missing")
	if code != exitOK || !strings.Contains(out, "copied 1,") {
		t.Fatalf("--recopy-missing: exit %d\n%s", code, out)
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))
	code, out = p.sub(t, "")
	if code != exitOK || !strings.Contains(out, "nothing to copy: everything is at the destination") || !strings.Contains(out, "copied earlier confirmed there") {
		t.Fatalf("after: exit %d\n%s", code, out)
	}
}

// TestOneRunPerPair: a run of a pair while another holds its lock (with
// another state file) is refused at once, before it copies anything.
func TestOneRunPerPair(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 132, Count: 10, MaxAttach: 10 << 10})
	p := newPair(t, msgs)
	from, _ := (&Config{}).resolve("from", "pop3s://"+p.src.Name+"@"+p.srv.POP3S)
	to, _ := (&Config{}).resolve("to", "imaps://"+p.dst.Name+"@"+p.srv.IMAPS)
	lock, err := store.LockPair(defaultStateDir(), identity(from), identity(to), "/elsewhere/other.db")
	if err != nil {
		t.Fatal(err)
	}
	code, out := p.sub(t, "")
	lock.Release()
	if code != exitFatal || !strings.Contains(out, "another mailmove run is copying") || !strings.Contains(out, "/elsewhere/other.db") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if got := p.fetchAll(t, p.dst, "INBOX"); len(got) != 0 {
		t.Fatalf("copied %d while the pair was locked", len(got))
	}
	if _, err := os.Stat(p.state); err == nil {
		t.Errorf("the refused run created its state")
	}
}

// TestVerifyContent: verify --content fetches what mailmove copied and
// compares it with the source, byte for byte; a message changed at the
// destination afterwards (a byte of Dovecot's file flipped) is named, with
// where it differs.
func TestVerifyContent(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 133, Count: 30, MaxAttach: 10 << 10})
	p := newPair(t, msgs)
	if code, out := p.sub(t, ""); code != exitOK {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	if code, out := p.sub(t, "verify", "--content"); code != exitOK || !strings.Contains(out, "30 identical, 0 differ") {
		t.Fatalf("verify --content: exit %d\n%s", code, out)
	}
	// Alter one stored message in place: same size, one byte changed in its
	// Subject.
	files, _ := filepath.Glob(filepath.Join(p.dst.Home, "Maildir", "cur", "*"))
	more, _ := filepath.Glob(filepath.Join(p.dst.Home, "Maildir", "new", "*"))
	files = append(files, more...)
	altered := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if i := bytes.Index(b, []byte("\nSubject: ")); i >= 0 {
			b[i+10] ^= 0x20 // case of the first letter
			os.WriteFile(f, b, 0o600)
			altered = true
			break
		}
	}
	if !altered {
		t.Fatal("no stored message found to alter")
	}
	code, out := p.sub(t, "verify", "--content")
	if code != exitIncomplete || !strings.Contains(out, "29 identical, 1 differ") || !strings.Contains(out, "(line ") || !strings.Contains(out, "header): sent") {
		t.Fatalf("after altering one: exit %d\n%s", code, out)
	}
}

// TestStateUnwritable: a state file that cannot be written is said so at
// once, with what to do, and without "state saved".
func TestStateUnwritable(t *testing.T) {
	p := newPair(t, mailgen.Mailbox(mailgen.Options{Seed: 134, Count: 3}))
	p.state = "/etc/hostname/state.db" // under a file: not a directory
	code, out := p.sub(t, "")
	if code != exitFatal || !strings.Contains(out, "cannot write the state file") || strings.Contains(out, "state saved") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// TestSpoolLeftovers: what a killed run left in its spool directory is
// removed by the next run of the same state.
func TestSpoolLeftovers(t *testing.T) {
	p := newPair(t, mailgen.Mailbox(mailgen.Options{Seed: 135, Count: 3}))
	spool := strings.TrimSuffix(p.state, ".db") + ".spool"
	os.MkdirAll(spool, 0o700)
	left := filepath.Join(spool, "mailmove-spool-123456")
	if err := os.WriteFile(left, bytes.Repeat([]byte("x"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := p.sub(t, ""); code != exitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if _, err := os.Stat(left); err == nil {
		t.Fatal("the spool file of a killed run is still there")
	}
}
