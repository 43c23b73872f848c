package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/faultproxy"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/migrate/pop3"
)

// faultPair is a pair whose servers are reached through fault proxies.
type faultPair struct {
	*pair
	pop, imap *faultproxy.Proxy
	plain     bool // POP3 and IMAP without TLS, so lines can be rewritten
}

func newFaultPair(t *testing.T, msgs [][]byte, plain bool) *faultPair {
	t.Helper()
	p := newPair(t, msgs)
	popTarget := p.srv.POP3S
	if plain {
		popTarget = p.srv.POP3
	}
	pop, err := faultproxy.Start(popTarget)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pop.Close)
	target := p.srv.IMAPS
	if plain {
		target = p.srv.IMAP
	}
	im, err := faultproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(im.Close)
	return &faultPair{pair: p, pop: pop, imap: im, plain: plain}
}

// plainEndpoints writes a config file whose endpoints "src" (POP3) and
// "dst" (IMAP) have no TLS, and returns the flags that use it.
func plainEndpoints(t testing.TB, popAddr, popUser, imapAddr, imapUser string) []string {
	cfg := filepath.Join(t.TempDir(), "config.toml")
	endpoint := func(name, typ, addr, user string) string {
		host, port, _ := strings.Cut(addr, ":")
		return fmt.Sprintf("[endpoints.%s]\ntype = %q\nhost = %q\nport = %s\nuser = %q\ntls = \"none\"\n", name, typ, host, port, user)
	}
	if err := os.WriteFile(cfg, []byte(endpoint("src", "pop3", popAddr, popUser)+endpoint("dst", "imap", imapAddr, imapUser)), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--from", "src", "--to", "dst", "--config", cfg, "--allow-plaintext"}
}

// run migrates through the proxies, with a short silence timeout.
func (f *faultPair) run(t *testing.T, extra ...string) (migrate.Summary, string, error) {
	t.Helper()
	args := []string{"--ca-file", f.srv.CAFile, "--state", f.state, "--quiet", "--timeout", "3s"}
	if f.plain {
		args = append(args, plainEndpoints(t, f.pop.Addr(), f.src.Name, f.imap.Addr(), f.dst.Name)...)
	} else {
		args = append(args, "--from", "pop3s://"+f.src.Name+"@"+f.pop.Addr(), "--to", "imaps://"+f.dst.Name+"@"+f.imap.Addr())
	}
	return f.runMain(t, append(args, extra...)...)
}

func faultMailbox(seed uint64, n int) [][]byte {
	return mailgen.Mailbox(mailgen.Options{Seed: seed, Count: n, MaxAttach: 60 << 10})
}

// TestFaultCutMidRETR cuts the POP3 connection three times in the middle of
// downloads.
func TestFaultCutMidRETR(t *testing.T) {
	msgs := faultMailbox(91, 250)
	f := newFaultPair(t, msgs, false)
	f.pop.Next(faultproxy.Fault{CutDown: 150_000}, faultproxy.Fault{CutDown: 700_000}, faultproxy.Fault{CutDown: 60_000})
	sum, out, err := f.run(t)
	if err != nil || sum.Copied != len(msgs) {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, msgs, f.fetchAll(t, f.dst, "INBOX"))
	if _, cuts, _ := f.pop.Counts(); cuts != 3 {
		t.Fatalf("%d cuts injected, want 3", cuts)
	}
}

// appendModes are the two ways mailmove appends: batches over parallel
// connections (the default), and one message at a time over the main
// connection (--connections 0; also how a batch that failed is retried).
var appendModes = []struct {
	name string
	args []string
}{{"pipelined", nil}, {"one-connection", []string{"--connections", "0"}}}

// TestFaultCutMidAppend cuts the IMAP upload twice, in the middle of APPEND
// literals, whichever connection carries them.
func TestFaultCutMidAppend(t *testing.T) {
	for _, mode := range appendModes {
		t.Run(mode.name, func(t *testing.T) {
			msgs := faultMailbox(92, 250)
			f := newFaultPair(t, msgs, false)
			f.imap.CutUpTotal(400_000, 1_000_000)
			sum, out, err := f.run(t, mode.args...)
			if err != nil || sum.Copied != len(msgs) {
				t.Fatalf("%+v %v\n%s", sum, err, out)
			}
			checkExactlyOnce(t, msgs, f.fetchAll(t, f.dst, "INBOX"))
			if _, cuts, _ := f.imap.Counts(); cuts != 2 {
				t.Fatalf("%d cuts injected, want 2", cuts)
			}
		})
	}
}

var appendOK = regexp.MustCompile(`^(\S+) OK \[APPENDUID `)

// TestFaultLostAppendReply cuts the connection after the server stored
// messages but before its OK reached mailmove: each is found at the
// destination, not appended again. One at a time, three replies are lost;
// pipelined, the replies to two batches, each for all of its messages.
func TestFaultLostAppendReply(t *testing.T) {
	for _, mode := range appendModes {
		t.Run(mode.name, func(t *testing.T) {
			msgs := faultMailbox(93, 200)
			f := newFaultPair(t, msgs, true)
			lose := map[int32]bool{5: true, 60: true, 61: true}
			if mode.args == nil {
				lose = map[int32]bool{1: true, 3: true}
			}
			var n atomic.Int32
			f.imap.Always(faultproxy.Fault{Down: func(line []byte) ([]byte, bool) {
				if appendOK.Match(line) && lose[n.Add(1)] {
					return nil, true // the OK is lost with the connection
				}
				return line, false
			}})
			report := filepath.Join(t.TempDir(), "report.json")
			sum, out, err := f.run(t, append(mode.args, "--report", report)...)
			if err != nil || sum.Copied != len(msgs) {
				t.Fatalf("%+v %v\n%s", sum, err, out)
			}
			checkExactlyOnce(t, msgs, f.fetchAll(t, f.dst, "INBOX"))
			got := confirmedAfterLostReply(t, report)
			if mode.args != nil && got != 3 || mode.args == nil && got < 2 {
				t.Fatalf("%d messages confirmed after a lost reply, want 3 one at a time, 2 or more pipelined", got)
			}
		})
	}
}

func confirmedAfterLostReply(t *testing.T, report string) int {
	t.Helper()
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Messages []migrate.Event }
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range rep.Messages {
		if strings.Contains(ev.Reason, "after a lost reply") {
			n++
		}
	}
	return n
}

// TestFaultThrottled turns an APPEND's OK into a throttling refusal with a
// suggested backoff: the messages (which the server did store) are found,
// not doubled, after at least the suggested pause.
func TestFaultThrottled(t *testing.T) {
	for _, mode := range appendModes {
		t.Run(mode.name, func(t *testing.T) {
			msgs := faultMailbox(94, 60)
			f := newFaultPair(t, msgs, true)
			which := int32(7)
			if mode.args == nil {
				which = 1
			}
			var n atomic.Int32
			f.imap.Always(faultproxy.Fault{Down: func(line []byte) ([]byte, bool) {
				if m := appendOK.FindSubmatch(line); m != nil && n.Add(1) == which {
					return fmt.Appendf(nil, "%s NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 1500 ms\r\n", m[1]), false
				}
				return line, false
			}})
			report := filepath.Join(t.TempDir(), "report.json")
			start := time.Now()
			sum, out, err := f.run(t, append(mode.args, "--report", report)...)
			if err != nil || sum.Copied != len(msgs) {
				t.Fatalf("%+v %v\n%s", sum, err, out)
			}
			if time.Since(start) < 1500*time.Millisecond {
				t.Fatalf("the suggested backoff was not honoured")
			}
			checkExactlyOnce(t, msgs, f.fetchAll(t, f.dst, "INBOX"))
			got := confirmedAfterLostReply(t, report)
			if mode.args != nil && got != 1 || got < 1 {
				t.Fatalf("%d messages confirmed at the destination, want the throttled ones", got)
			}
		})
	}
}

// TestFaultStall freezes the IMAP server, then the POP3 server, in
// mid-session: the watchdog gives up on it after --timeout of silence, and
// the run carries on. (The append connections' deadlines are tested in
// migrate/imap.)
func TestFaultStall(t *testing.T) {
	msgs := faultMailbox(95, 100)
	f := newFaultPair(t, msgs, false)
	f.imap.Next(faultproxy.Fault{StallDown: 3_000})
	f.pop.Next(faultproxy.Fault{StallDown: 300_000}) // and the POP3 server, mid-RETR
	sum, out, err := f.run(t, "--connections", "0")
	if err != nil || sum.Copied != len(msgs) {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, msgs, f.fetchAll(t, f.dst, "INBOX"))
	_, _, imapStalls := f.imap.Counts()
	_, _, popStalls := f.pop.Counts()
	if imapStalls != 1 || popStalls != 1 {
		t.Fatalf("stalls injected: IMAP %d, POP3 %d; want 1 each", imapStalls, popStalls)
	}
}

// TestDovecotRestart restarts the real server while a real mailmove process
// migrates: it rides through the outage and finishes with each message once.
func TestDovecotRestart(t *testing.T) {
	msgs := faultMailbox(96, 1200)
	p := newPair(t, msgs)
	cmd, out := p.startProcess(t, "--rate", "400") // 3 s: the restart comes mid-run
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The restart comes once the run is copying, and before it is done:
	// events, not a time.
	waitUntil(t, exited, "200 messages at the destination", func() bool { return p.count(t, p.dst, "INBOX") >= 200 })
	if n := p.count(t, p.dst, "INBOX"); n >= len(msgs) {
		t.Fatalf("all %d messages were there before the restart: the test would prove nothing", n)
	}
	if err := p.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("mailmove did not ride through the restart: %v\n%s", err, out.String())
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("mailmove still running after the restart:\n%s", out.String())
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))
}

// TestQuotaFull migrates into an account that fills up: mailmove stops at
// once with exit 5, every message it copied is there once, and the rest wait
// at the source.
func TestQuotaFull(t *testing.T) {
	for i, mode := range appendModes {
		t.Run(mode.name, func(t *testing.T) { testQuotaFull(t, i, mode.args) })
	}
}

func testQuotaFull(t *testing.T, user int, extra []string) {
	msgs := faultMailbox(97, 120)
	p := newPair(t, msgs)
	p.dst = p.srv.QuotaUser(user)
	sum, out, err := p.runMain(t, p.args(extra...)...)
	var buf bytes.Buffer
	if code := exitCode(&buf, sum, err); code != exitFull || !errors.Is(err, migrate.ErrFull) {
		t.Fatalf("exit %d: %v\n%s%s", code, err, buf.String(), out)
	}
	got := p.fetchAll(t, p.dst, "INBOX")
	if len(got) == 0 || len(got) != sum.Copied || sum.Copied >= len(msgs) {
		t.Fatalf("%d stored, %d copied of %d", len(got), sum.Copied, len(msgs))
	}
	seen := map[string]bool{}
	for _, s := range got {
		if seen[string(s.body)] {
			t.Fatal("a message is there twice")
		}
		seen[string(s.body)] = true
	}
	if !strings.Contains(buf.String(), "Free space at the destination") {
		t.Fatalf("no advice: %s", buf.String())
	}
}

// TestFaultSlowLink uploads a 12 MB message over a link slow enough that the
// upload takes longer than --timeout, but never falls silent for that long:
// it must not be cut (go-imap alone would cut any literal at 5 minutes, and
// a silence-blind timeout would cut this one).
func TestFaultSlowLink(t *testing.T) {
	big := mailgen.Mailbox(mailgen.Options{Seed: 98, Count: 3, MaxAttach: 12 << 20})
	f := newFaultPair(t, big, false)
	f.imap.Always(faultproxy.Fault{Delay: 15 * time.Millisecond})
	start := time.Now()
	sum, out, err := f.run(t, "--timeout", "2s")
	if err != nil || sum.Copied != len(big) {
		t.Fatalf("%+v %v\n%s", sum, err, out)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("the link was not slow: %v (the test proves nothing)", took)
	}
	checkExactlyOnce(t, big, f.fetchAll(t, f.dst, "INBOX"))
}

// popCount is how many messages the POP3 account holds now.
func (p *pair) popCount(t *testing.T) int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.srv.CAPEM)
	c, err := pop3.Dial(t.Context(), p.srv.POP3S, pop3.Options{TLS: pop3.TLSImplicit, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Auth(p.src.Name, p.src.Password); err != nil {
		t.Fatal(err)
	}
	n, _, err := c.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeleteAfterVerify: deletion from the POP3 server happens in batches
// committed by QUIT; a connection cut in the middle of a batch deletes
// nothing of it; a message missing at the destination is never deleted.
func TestDeleteAfterVerify(t *testing.T) {
	msgs := faultMailbox(103, 120)
	f := newFaultPair(t, msgs, true)
	var deles atomic.Int32
	cutAt70 := faultproxy.Fault{Up: func(line []byte) ([]byte, bool) {
		if bytes.HasPrefix(line, []byte("DELE ")) && deles.Add(1) == 70 {
			return nil, true
		}
		return line, false
	}}
	f.pop.Always(faultproxy.Fault{Up: cutAt70.Up})
	sum, out, err := f.run(t, "--delete-after-verify")
	if err == nil || sum.Copied != len(msgs) {
		t.Fatalf("the cut went unnoticed: %+v %v\n%s", sum, err, out)
	}
	if n := f.popCount(t); n != 70 {
		t.Fatalf("%d messages left on the server, want 70: only the first batch of 50 was committed", n)
	}
	checkExactlyOnce(t, msgs, f.fetchAll(t, f.dst, "INBOX"))

	// One of the remaining messages disappears from the destination.
	f.expunge(t, "INBOX", 100)
	f.pop.Always(faultproxy.Fault{})
	_, out, err = f.run(t, "--delete-after-verify", "--dry-run")
	if err != nil || !strings.Contains(out, "would delete 69 message(s)") {
		t.Fatalf("dry-run: %v\n%s", err, out)
	}
	if n := f.popCount(t); n != 70 {
		t.Fatalf("the dry-run deleted: %d left", n)
	}
	_, out, err = f.run(t, "--delete-after-verify")
	if err != nil || !strings.Contains(out, "deleted 69 message(s)") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if n := f.popCount(t); n != 1 {
		t.Fatalf("%d messages left on the server, want the 1 not verified at the destination", n)
	}
}
