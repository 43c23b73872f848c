package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"

	"github.com/mailmove/mailmove/internal/childserver"
	"github.com/mailmove/mailmove/internal/conformance"
	"github.com/mailmove/mailmove/internal/couriertest"
	"github.com/mailmove/mailmove/internal/cyrustest"
	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/internal/maddytest"
	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/moxtest"
	"github.com/mailmove/mailmove/internal/popa3dtest"
)

// The other real servers start when a test first needs one, once for the
// package, and stop with it.
var (
	others   sync.Map // name → *started
	stopping []func()
	stopMu   sync.Mutex
)

type started struct {
	once sync.Once
	srv  mailserver.Server
	err  error
}

func server(t *testing.T, name string) mailserver.Server {
	t.Helper()
	if name == "dovecot" {
		return dovecottest.Need(t, dovecot).Mailserver()
	}
	v, _ := others.LoadOrStore(name, &started{})
	s := v.(*started)
	s.once.Do(func() {
		var stop func()
		switch name {
		case "cyrus":
			var c *cyrustest.Server
			if c, s.err = cyrustest.Start(); s.err == nil {
				s.srv, stop = c, c.Stop
			}
		case "courier":
			var c *couriertest.Server
			if c, s.err = couriertest.Start(); s.err == nil {
				s.srv, stop = c, c.Stop
			}
		case "popa3d":
			var p *popa3dtest.Server
			if p, s.err = popa3dtest.Start(); s.err == nil {
				s.srv, stop = p, p.Stop
			}
		case "maddy":
			var m *maddytest.Server
			if m, s.err = maddytest.Start(); s.err == nil {
				s.srv, stop = m, m.Stop
			}
		case "mox":
			var m *moxtest.Server
			if m, s.err = moxtest.Start(); s.err == nil {
				s.srv, stop = m, m.Stop
			}
		default:
			s.err = errors.New("no such server")
		}
		if stop != nil {
			stopMu.Lock()
			stopping = append(stopping, stop)
			stopMu.Unlock()
		}
	})
	if name == "maddy" || name == "mox" {
		// Built by make goservers (make interop): skipped where it was not,
		// unless MAILMOVE_REQUIRE_SERVERS names it.
		return childserver.Need(t, name, s.srv, s.err)
	}
	return mailserver.Need(t, name, s.srv, s.err)
}

// stopOthers stops the servers started by server (from TestMain).
func stopOthers() {
	stopMu.Lock()
	defer stopMu.Unlock()
	for _, stop := range stopping {
		stop()
	}
}

// harness runs the test binary as mailmove, a real process.
var harness = conformance.Harness{
	Run: func(t testing.TB, env []string, args ...string) (int, string) {
		cmd := mailmoveProcess(env, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	},
	Start: func(t testing.TB, env []string, args ...string) *exec.Cmd {
		cmd := mailmoveProcess(env, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	},
}

func mailmoveProcess(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), env...), "MAILMOVE_AS_MAIN=1")
	return cmd
}

// corpusSize is 500 and more: the messages of the conformance corpus.
const corpusSize = 500

// TestConformanceDestination: the corpus, from Dovecot's POP3, into each
// real IMAP server as its distribution configures it.
func TestConformanceDestination(t *testing.T) {
	for _, name := range []string{"dovecot", "cyrus", "courier"} {
		t.Run(name, func(t *testing.T) {
			conformance.Migration{
				Src: server(t, "dovecot"), Dst: server(t, name),
				Corpus:  conformance.Corpus(900, corpusSize),
				Raw8bit: name == "courier", // it offers UTF8=ACCEPT
			}.Run(t, harness)
		})
	}
}

// TestConformanceSource: the corpus, from each real POP3 server, into
// Dovecot's IMAP.
func TestConformanceSource(t *testing.T) {
	for _, name := range []string{"cyrus", "courier", "popa3d"} {
		t.Run(name, func(t *testing.T) {
			corpus := conformance.Corpus(901, corpusSize)
			switch name {
			case "popa3d":
				// What its unquoted mbox cannot hold as it is.
				corpus = slices.DeleteFunc(corpus, func(m conformance.Msg) bool { return !popa3dtest.Servable(m.Data) })
			case "cyrus":
				// A Cyrus mailbox never holds a NUL byte (lmtpd refuses
				// them); one planted in its spool is served cut at the NUL.
				corpus = slices.DeleteFunc(corpus, func(m conformance.Msg) bool { return bytes.IndexByte(m.Data, 0) >= 0 })
			}
			conformance.Migration{Src: server(t, name), Dst: server(t, "dovecot"), Corpus: corpus}.Run(t, harness)
		})
	}
}

// TestInteropDestination: the corpus into the IMAP servers written in Go,
// maddy (SQLite storage) and mox, built by make goservers; make interop
// requires them.
func TestInteropDestination(t *testing.T) {
	for _, name := range []string{"maddy", "mox"} {
		t.Run(name, func(t *testing.T) {
			conformance.Migration{
				Src: server(t, "dovecot"), Dst: server(t, name),
				Corpus:  conformance.Corpus(902, corpusSize),
				Raw8bit: name == "mox", // it offers UTF8=ACCEPT
			}.Run(t, harness)
		})
	}
}
