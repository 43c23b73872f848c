package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	imapv2 "github.com/emersion/go-imap/v2"

	"github.com/mailmove/mailmove/internal/mailgen"
)

// TestStatus asks `mailmove status` during a real migration (the state is
// locked: the status file answers) and after it (the state answers).
func TestStatus(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 101, Count: 1200, MaxAttach: 20 << 10})
	p := newPair(t, msgs)
	status := func() string {
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, command: "status"}
		if err := m.ParseFlags([]string{"--state", p.state}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Run(t.Context()); err != nil {
			t.Fatalf("status: %v\n%s", err, out.String())
		}
		return out.String()
	}
	if out := status(); !strings.Contains(out, "no migration yet") {
		t.Fatalf("before: %s", out)
	}
	cmd, _ := p.startProcess(t, "--rate", "300") // 4 s, to be seen running
	var during string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if during = status(); strings.Contains(during, "INBOX") && strings.Contains(during, "copied") {
			break
		}
	}
	if !strings.Contains(during, "running since") || !strings.Contains(during, "progress:") {
		t.Fatalf("during the run:\n%s", during)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	after := status()
	if !strings.Contains(after, "not running") || !strings.Contains(after, "INBOX") ||
		!strings.Contains(after, fmt.Sprintf("copied %d", len(msgs))) || !strings.Contains(after, ": finished") {
		t.Fatalf("after the run:\n%s", after)
	}
}

// sub runs a mailmove subcommand in-process and returns its exit code.
func (p *pair) sub(t *testing.T, command string, args ...string) (int, string) {
	t.Helper()
	t.Setenv("MAILMOVE_FROM_PASSWORD", p.src.Password)
	t.Setenv("MAILMOVE_TO_PASSWORD", p.dst.Password)
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out, command: command}
	if err := m.ParseFlags(p.args(args...)); err != nil {
		t.Fatal(err)
	}
	sum, err := m.Run(t.Context())
	return exitCode(&out, sum, err), out.String()
}

// expunge deletes the n-th message of a destination folder, as a user
// cleaning up would.
func (p *pair) expunge(t *testing.T, folder string, n uint32) {
	t.Helper()
	c := p.login(t, p.dst)
	defer c.Close()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imapv2.SeqSetNum(n), &imapv2.StoreFlags{Op: imapv2.StoreFlagsAdd, Flags: []imapv2.Flag{imapv2.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
}

// TestVerify: complete after a migration; a message deleted at the
// destination is caught and named, exit 3.
func TestVerify(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 102, Count: 80, MaxAttach: 10 << 10})
	p := newPair(t, msgs)
	if code, out := p.sub(t, "verify"); code != exitIncomplete || !strings.Contains(out, "not copied yet") {
		t.Fatalf("before: exit %d\n%s", code, out)
	}
	if sum, out, err := p.runMain(t, p.args()...); err != nil || sum.Copied != len(msgs) {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	report := filepath.Join(t.TempDir(), "verify.json")
	if code, out := p.sub(t, "verify", "--report", report); code != exitOK || !strings.Contains(out, "complete") {
		t.Fatalf("after: exit %d\n%s", code, out)
	}
	p.expunge(t, "INBOX", 17)
	code, out := p.sub(t, "verify")
	if code != exitIncomplete || strings.Count(out, "  missing ") != 1 || !strings.Contains(out, "deleted there?") {
		t.Fatalf("after a deletion: exit %d\n%s", code, out)
	}
	if st, err := os.Stat(report); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("report %v %v", st, err)
	}
}

// TestUndo removes what one run appended, and nothing else; the next run
// copies those messages again, once.
func TestUndo(t *testing.T) {
	first := mailgen.Mailbox(mailgen.Options{Seed: 104, Count: 40, MaxAttach: 10 << 10})
	p := newPair(t, first)
	if sum, out, err := p.runMain(t, p.args()...); err != nil || sum.Copied != len(first) {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	more := mailgen.Mailbox(mailgen.Options{Seed: 105, Count: 15, MaxAttach: 10 << 10})
	if err := p.srv.Seed(p.src, more); err != nil {
		t.Fatal(err)
	}
	sum, out, err := p.runMain(t, p.args()...)
	if err != nil || sum.Copied != len(more) {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	// Not confirmed: nothing happens.
	var buf bytes.Buffer
	m := &Main{Stdout: &buf, Stderr: &buf, command: "undo", Stdin: strings.NewReader("no\n")}
	m.ParseFlags(p.args("--run", sum.Run))
	if _, err := m.Run(t.Context()); err == nil || len(p.fetchAll(t, p.dst, "INBOX")) != len(first)+len(more) {
		t.Fatalf("undo without confirmation: %v\n%s", err, buf.String())
	}
	code, out := p.sub(t, "undo", "--run", sum.Run, "--yes")
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("removed %d message(s)", len(more))) {
		t.Fatalf("undo: exit %d\n%s", code, out)
	}
	checkExactlyOnce(t, first, p.fetchAll(t, p.dst, "INBOX"))
	if sum, out, err := p.runMain(t, p.args()...); err != nil || sum.Copied != len(more) {
		t.Fatalf("after undo: %+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, append(first, more...), p.fetchAll(t, p.dst, "INBOX"))
}

// TestUndoRecreatedFolder: after a run, the user deletes a folder at the
// destination and creates it again with the same messages (a restore from
// a backup, another tool's copy): the new folder numbers them afresh, so the
// recorded UIDs now name the user's own messages, same sizes and
// Message-IDs. undo leaves that folder alone, says why, exits 3, and still
// removes what it copied to the other folders.
func TestUndoRecreatedFolder(t *testing.T) {
	p, _, filed := newProfile(t, 60, 131)
	sum, out, err := p.runMain(t, p.args()...)
	if err != nil || sum.Copied == 0 {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	const folder = "Work"
	kept := p.fetchAll(t, p.dst, folder)
	if len(kept) == 0 {
		t.Fatalf("the profile put nothing in %s: the test would prove nothing", folder)
	}
	c := p.login(t, p.dst)
	if err := c.Delete(folder).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	bodies := make([][]byte, len(kept))
	for i, s := range kept {
		bodies[i] = s.body
	}
	p.appendRaw(t, folder, bodies) // creates it again, UIDs from 1
	code, out := p.sub(t, "undo", "--run", sum.Run, "--yes")
	if code != exitIncomplete || !strings.Contains(out, "recreated since") {
		t.Fatalf("undo: exit %d\n%s", code, out)
	}
	if got := p.fetchAll(t, p.dst, folder); len(got) != len(kept) {
		t.Fatalf("%s holds %d of the user's %d messages after undo\n%s", folder, len(got), len(kept), out)
	}
	inbox := 0
	for _, f := range filed {
		if dest, _ := expect(f, defaultDest); dest == "INBOX" {
			inbox++
		}
	}
	if inbox == 0 || !strings.Contains(out, fmt.Sprintf("removed %d message(s)", sum.Copied-len(kept))) {
		t.Fatalf("undo did not remove the other folders' %d copies (%d in INBOX)\n%s", sum.Copied-len(kept), inbox, out)
	}
	if n := p.count(t, p.dst, "INBOX"); n != 0 {
		t.Fatalf("INBOX still holds %d copies after undo\n%s", n, out)
	}
}
