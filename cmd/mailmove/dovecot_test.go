package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/mailcheck"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/store"
)

func TestMigrateDovecot(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 1, Count: 400, Duplicates: 0.03})
	p := newPair(t, msgs)
	want := distinct(msgs)

	sum, out, err := p.runMain(t, p.args("--report", p.state+".json")...)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if sum.Copied != want || sum.Duplicates != len(msgs)-want || sum.Failed != 0 {
		t.Fatalf("copied %d duplicates %d failed %d; want %d, %d, 0", sum.Copied, sum.Duplicates, sum.Failed, want, len(msgs)-want)
	}
	got := p.fetchAll(t, p.dst, "INBOX")
	checkExactlyOnce(t, msgs, got)
	for _, s := range got {
		if !slices.Contains(s.flags, imapv2.FlagSeen) {
			t.Fatalf("message without \\Seen: flags %v", s.flags)
		}
		// The delivery time, read by the standard library (every mailgen
		// message has a Received: line with its own date).
		d, ok := mailcheck.ArrivalDate(s.body)
		if !ok || !d.Equal(s.date) {
			t.Fatalf("INTERNALDATE %v, want %v (read %v)", s.date, d, ok)
		}
	}

	// The report: owner-only, valid JSON, one entry per source message.
	st, err := os.Stat(p.state + ".json")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("report mode: %v %v", st.Mode(), err)
	}
	raw, _ := os.ReadFile(p.state + ".json")
	var rep struct {
		Messages []migrate.Event
		Summary  migrate.Summary
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	if len(rep.Messages) != len(msgs) || rep.Summary.Copied != want {
		t.Fatalf("report has %d messages, summary copied %d", len(rep.Messages), rep.Summary.Copied)
	}
	if st, _ := os.Stat(p.state); st.Mode().Perm() != 0o600 {
		t.Fatalf("state mode %v", st.Mode())
	}

	// A second run copies nothing and reads no message.
	sum, out, err = p.runMain(t, p.args()...)
	if err != nil || sum.Copied != 0 || sum.AlreadyDone != len(msgs) {
		t.Fatalf("second run: %+v %v\n%s", sum, err, out)
	}
	if !strings.Contains(out, "nothing to copy") {
		t.Fatalf("second run does not say there was nothing to do:\n%s", out)
	}

	// With the state lost, the destination itself says what is there.
	os.Remove(p.state)
	sum, out, err = p.runMain(t, p.args()...)
	if err != nil || sum.Copied != 0 || sum.Present+sum.Duplicates != len(msgs) || sum.Present != want {
		t.Fatalf("run without state: %+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))

	// --keep-duplicates turns that off, and says so.
	os.Remove(p.state)
	sum, out, err = p.runMain(t, p.args("--keep-duplicates", "--folder", "Copies")...)
	if err != nil || sum.Copied != len(msgs) || !sum.KeepDuplicates {
		t.Fatalf("keep-duplicates: %+v %v", sum, err)
	}
	if !strings.Contains(out, "--keep-duplicates") {
		t.Fatalf("summary does not mention --keep-duplicates:\n%s", out)
	}
	if n := len(p.fetchAll(t, p.dst, "Copies")); n != len(msgs) {
		t.Fatalf("Copies holds %d, want %d", n, len(msgs))
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 2, Count: 60})
	p := newPair(t, msgs)
	sum, out, err := p.runMain(t, p.args("--dry-run", "--folder", "Archive/2015")...)
	if err != nil {
		t.Fatalf("dry-run: %v\n%s", err, out)
	}
	if sum.Copied != len(msgs) || !sum.DryRun {
		t.Fatalf("dry-run would copy %d, want %d", sum.Copied, len(msgs))
	}
	if _, err := os.Stat(p.state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry-run created the state file: %v", err)
	}
	if n := strings.Count(out, " would-copy "); n != len(msgs) {
		t.Fatalf("dry-run printed %d would-copy lines, want %d:\n%s", n, len(msgs), out)
	}
	if !strings.Contains(out, `folder "Archive/2015" would be created`) {
		t.Fatalf("dry-run does not say the folder would be created:\n%s", out)
	}
	if got := p.fetchAll(t, p.dst, "INBOX"); len(got) != 0 {
		t.Fatalf("dry-run appended %d messages", len(got))
	}

	// After a real run, a dry-run leaves the state file byte for byte alone.
	if _, _, err := p.runMain(t, p.args()...); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p.state)
	sum, _, err = p.runMain(t, p.args("--dry-run")...)
	after, _ := os.ReadFile(p.state)
	if err != nil || sum.AlreadyDone != len(msgs) || !bytes.Equal(before, after) {
		t.Fatalf("dry-run after a run: %+v %v, state changed: %v", sum, err, !bytes.Equal(before, after))
	}
}

func TestStartTLSEndpoints(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 3, Count: 20})
	p := newPair(t, msgs)
	args := []string{
		"--from", "pop3://" + p.src.Name + "@" + p.srv.POP3,
		"--to", "imap://" + p.dst.Name + "@" + p.srv.IMAP,
		"--ca-file", p.srv.CAFile, "--state", p.state, "--quiet",
	}
	sum, out, err := p.runMain(t, args...)
	if err != nil || sum.Copied != len(msgs) {
		t.Fatalf("STARTTLS run: %+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))
}

func TestConfigEndpoints(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 4, Count: 10})
	p := newPair(t, msgs)
	dir := t.TempDir()
	os.WriteFile(dir+"/pop.pass", []byte(p.src.Password+"\n"), 0o600)
	host, port, _ := strings.Cut(p.srv.POP3S, ":")
	conf := `folder = "FromOrange"
ca_file = "` + p.srv.CAFile + `"
state = "` + p.state + `"
[endpoints.pop]
type = "pop3"
host = "` + host + `"
port = ` + port + `
user = "` + p.src.Name + `"
tls = "implicit"
password_file = "` + dir + `/pop.pass"
[endpoints.imap]
url = "imaps://` + p.dst.Name + "@" + p.srv.IMAPS + `"
password_command = "echo ` + p.dst.Password + `"
`
	os.WriteFile(dir+"/config.toml", []byte(conf), 0o600)
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out}
	t.Setenv("MAILMOVE_FROM_PASSWORD", "")
	t.Setenv("MAILMOVE_TO_PASSWORD", "")
	if err := m.ParseFlags([]string{"--from", "pop", "--to", "imap", "--config", dir + "/config.toml", "--quiet"}); err != nil {
		t.Fatal(err)
	}
	sum, err := m.Run(t.Context())
	if err != nil || sum.Copied != len(msgs) {
		t.Fatalf("config run: %+v %v\n%s", sum, err, out.String())
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "FromOrange"))
}

func TestRefusals(t *testing.T) {
	p := newPair(t, mailgen.Mailbox(mailgen.Options{Seed: 5, Count: 3}))

	t.Run("wrong password is fatal and not retried", func(t *testing.T) {
		t.Setenv("MAILMOVE_FROM_PASSWORD", "wrong")
		t.Setenv("MAILMOVE_TO_PASSWORD", p.dst.Password)
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out}
		m.ParseFlags(p.args())
		start := time.Now()
		sum, err := m.Run(t.Context())
		code := exitCode(&out, sum, err)
		if code != exitAuth || !strings.Contains(out.String(), "refused the login of "+p.src.Name) {
			t.Fatalf("exit %d: %s", code, out.String())
		}
		if strings.Contains(out.String(), "wrong") {
			t.Fatalf("the password appears in the output: %s", out.String())
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("a refused login took %v: it was retried", time.Since(start))
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		args := slices.Clone(p.args())
		i := slices.Index(args, "--ca-file")
		args = slices.Delete(args, i, i+2)
		sum, out, err := p.runMain(t, args...)
		var buf bytes.Buffer
		// The test CA's name appears: the user learns who issued it.
		if code := exitCode(&buf, sum, err); code != exitCert || !strings.Contains(buf.String(), "Antivirus") ||
			!strings.Contains(buf.String(), "issued by") {
			t.Fatalf("exit %d: %s %s", code, buf.String(), out)
		}
	})

	t.Run("second run on the same state stops at once", func(t *testing.T) {
		s, err := store.Open(p.state, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now()
		_, _, err = p.runMain(t, p.args()...)
		if !errors.Is(err, migrate.ErrLocked) || time.Since(start) > 5*time.Second {
			t.Fatalf("got %v after %v, want ErrLocked at once", err, time.Since(start))
		}
	})

	// Dovecot's TLS ports given without TLS: named at once, with the URL to
	// use, not retried as an outage.
	for _, tc := range []struct{ name, from, to, want string }{
		{"pop3 at the POP3 TLS port", "pop3://" + p.src.Name + "@" + p.srv.POP3S, "imaps://" + p.dst.Name + "@" + p.srv.IMAPS, "use pop3s://"},
		{"imap at the IMAP TLS port", "pop3s://" + p.src.Name + "@" + p.srv.POP3S, "imap://" + p.dst.Name + "@" + p.srv.IMAPS, "use imaps://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			sum, out, err := p.runMain(t, "--from", tc.from, "--to", tc.to, "--ca-file", p.srv.CAFile, "--state", p.state+".tls", "--dry-run")
			var buf bytes.Buffer
			if code := exitCode(&buf, sum, err); code == exitOK || !strings.Contains(buf.String(), "expects TLS from the start") || !strings.Contains(buf.String(), tc.want) {
				t.Fatalf("exit %d: %s %s", code, buf.String(), out)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %s: tried again as if the server were down?", d)
			}
		})
	}

	t.Run("password in URL refused", func(t *testing.T) {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		m.ParseFlags([]string{"--from", "pop3s://u:secret@127.0.0.1", "--to", "imaps://u@127.0.0.1"})
		_, err := m.Run(t.Context())
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "MAILMOVE_FROM_PASSWORD") || strings.Contains(err.Error(), "secret") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestSIGKILLLoop kills a real mailmove process at random moments while it
// migrates, then lets a last run finish, and checks that every message is at
// the destination exactly once.
func TestSIGKILLLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	count := 1500
	if n, err := strconv.Atoi(os.Getenv("MAILMOVE_KILL_COUNT")); err == nil && n > 0 {
		count = n // a bigger one-off run: MAILMOVE_KILL_COUNT=5000
	}
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 6, Count: count, Duplicates: 0.01})
	p := newPair(t, msgs)
	kills := p.killLoop(t, 8, count/9)
	sum, out, err := p.runMain(t, p.args()...)
	if err != nil || sum.Failed != 0 {
		t.Fatalf("final run: %+v %v\n%s", sum, err, out)
	}
	got := p.fetchAll(t, p.dst, "INBOX")
	checkExactlyOnce(t, msgs, got)
	t.Logf("%d kills survived; %d messages checked; final run reconciled %d in-flight, copied %d",
		kills, len(got), sum.Reconciled, sum.Copied)
	if kills == 0 {
		t.Fatal("no run was killed mid-way: the test proved nothing")
	}
}

// TestInterruptExits130 sends SIGTERM and SIGINT to a running mailmove: each
// must stop cleanly with 130 and leave nothing in flight, and a last run
// must complete the migration exactly once.
func TestInterruptExits130(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 7, Count: 600})
	p := newPair(t, msgs)
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		before := p.count(t, p.dst, "INBOX")
		cmd, out := p.startProcess(t, "--rate", "300") // 2 s for the lot: stopped mid-way
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Signalled once this run is copying: an event, not 700 ms.
		waitUntil(t, exited, fmt.Sprintf("run %d copying", i+1), func() bool { return p.count(t, p.dst, "INBOX") >= before+20 })
		cmd.Process.Signal(sig)
		err := <-exited
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("%v: got %v, want exit %d\n%s", sig, err, exitInterrupted, out.String())
		}
		if !strings.Contains(out.String(), "run the same command again") {
			t.Fatalf("%v: no resume advice:\n%s", sig, out.String())
		}
		s, err := store.Open(p.state, true)
		if err != nil {
			t.Fatal(err)
		}
		s.Records(func(r migrate.Record) error {
			if r.State == migrate.Pending {
				t.Errorf("%v: %s left pending: the message in flight was abandoned", sig, r.ID)
			}
			return nil
		})
		s.Close()
	}
	sum, out, err := p.runMain(t, p.args()...)
	if err != nil || sum.Reconciled != 0 {
		t.Fatalf("final run: %+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))
}

// killLoop starts mailmove as a real process runs times and SIGKILLs each
// once the destination holds a random 1 to spread more messages than when
// it started, a random few milliseconds after (in the middle of a batch,
// or between two): an event, so a fast or a slow machine kills as often.
// It returns how many runs were killed before they finished.
func (p *pair) killLoop(t *testing.T, runs, spread int) int {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 1))
	t.Logf("kill schedule seed %d", seed)
	c := p.login(t, p.dst) // one connection for every look
	defer c.Close()
	kills := 0
	for i := 0; i < runs; i++ {
		before := countAll(t, c)
		target := before + 1 + r.IntN(spread)
		cmd, _ := p.startProcess(t)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		finished := false
		for !finished && countAll(t, c) < target {
			select {
			case err := <-exited:
				t.Logf("run %d finished before its kill: %v", i, err)
				finished = true
			case <-time.After(10 * time.Millisecond):
			}
		}
		if finished {
			continue
		}
		time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		kills++
	}
	return kills
}

// countAll is how many messages the account of c holds in all its folders.
func countAll(t *testing.T, c *imapclient.Client) int {
	t.Helper()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range boxes {
		if st, err := c.Status(b.Mailbox, &imapv2.StatusOptions{NumMessages: true}).Wait(); err == nil && st.NumMessages != nil {
			n += int(*st.NumMessages)
		}
	}
	return n
}

// startProcess starts mailmove as a real process (this test binary, which
// TestMain turns into mailmove), with its output collected in out.
func (p *pair) startProcess(t *testing.T, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], p.args(extra...)...)
	cmd.Env = append(os.Environ(), append(p.env(), "MAILMOVE_AS_MAIN=1")...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}
