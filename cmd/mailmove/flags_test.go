package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in          string
		msgs, bytes float64
		ok          bool
	}{
		{"", 0, 0, true}, {"5", 5, 0, true}, {"2MB", 0, 2 << 20, true}, {"5,2MB/s", 5, 2 << 20, true},
		{"512K", 0, 512 << 10, true}, {"0.5", 0.5, 0, true}, {"fast", 0, 0, false}, {"-3", 0, 0, false},
	} {
		m, b, err := parseRate(tc.in)
		if (err == nil) != tc.ok || m != tc.msgs || b != tc.bytes {
			t.Errorf("%q: %v %v %v", tc.in, m, b, err)
		}
	}
}

func TestUntilTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 22, 30, 0, 0, time.Local)
	for in, want := range map[string]time.Time{
		"06:30": time.Date(2026, 11, 24, 6, 30, 0, 0, time.Local),
		"23:00": time.Date(2026, 11, 23, 23, 0, 0, 0, time.Local),
		"22:30": time.Date(2026, 11, 24, 22, 30, 0, 0, time.Local),
	} {
		if got, err := untilTime(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := untilTime("25:99", now); err == nil {
		t.Error("25:99 accepted")
	}
}

// TestUntilAndDebugWire: --until stops a real migration cleanly at its time
// (exit 130, nothing in flight) and the next run finishes it exactly once;
// --debug-wire shows both protocols and never a password.
func TestUntilAndDebugWire(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 81, Count: 1500, MaxAttach: 20 << 10})
	p := newPair(t, msgs)
	at := time.Now().Add(time.Hour).Truncate(time.Minute)
	t.Setenv("MAILMOVE_FROM_PASSWORD", p.src.Password)
	t.Setenv("MAILMOVE_TO_PASSWORD", p.dst.Password)
	var out bytes.Buffer
	// The time comes when 300 messages are copied: an event, not a time,
	// so a slow machine changes nothing.
	reached := make(chan struct{})
	m := &Main{Stdout: &out, Stderr: &out, untilEvent: reached, extraObserver: &afterCopies{n: 300, then: func() { close(reached) }}}
	if err := m.ParseFlags(p.args("--until", at.Format("15:04"), "--debug-wire")); err != nil {
		t.Fatal(err)
	}
	sum, err := m.Run(t.Context())
	var buf bytes.Buffer
	if code := exitCode(&buf, sum, err); code != exitInterrupted || !strings.Contains(buf.String(), "reached --until") || sum.Copied < 300 || sum.Copied == len(msgs) {
		t.Fatalf("exit %d, copied %d: %s", code, sum.Copied, buf.String())
	}
	log := out.String()
	for _, want := range []string{"C: CAPA", "S: +OK", "C: AUTH ***", "AUTHENTICATE PLAIN ***", "APPEND"} {
		if !strings.Contains(log, want) {
			t.Errorf("--debug-wire output lacks %q", want)
		}
	}
	if strings.Contains(log, p.src.Password) || strings.Contains(log, p.dst.Password) {
		t.Fatalf("a password is in the --debug-wire output")
	}
	sum2, out2, err := p.runMain(t, p.args()...)
	if err != nil || sum2.Copied+sum.Copied != len(msgs) || sum2.Reconciled != 0 {
		t.Fatalf("next run: %+v %v\n%s", sum2, err, out2)
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))
}

// afterCopies calls then once n messages are copied.
type afterCopies struct {
	migrate.NopObserver
	mu   sync.Mutex
	n    int
	then func()
}

func (a *afterCopies) Message(ev migrate.Event) {
	if ev.Action != migrate.ActCopied {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n--; a.n == 0 {
		a.then()
	}
}

// FuzzConfig: any config file gives a configuration or a clear error,
// never a panic, and never echoes a URL's password.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("state = \"x\"\n[endpoints.pop]\ntype = \"pop3\"\nhost = \"h\"\nuser = \"u\"\n"))
	f.Add([]byte("[endpoints.a]\nurl = \"imaps://u:hunter2@h\"\n[folder_map]\n\"A\" = \"B\"\n"))
	f.Add([]byte("[endpoints.tb]\ntype = \"mbox\"\npath = \"~/Mail\"\nspam_guard = 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "config.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path, true)
		if err != nil {
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("password echoed: %v", err)
			}
			return
		}
		// What a run shows of an endpoint (its name, identity, state
		// file, the errors about it) never holds a password written into
		// a URL of the file: such a URL is refused.
		for name := range cfg.Endpoints {
			e, err := cfg.resolve("from", name)
			if err != nil {
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("endpoint %q: password echoed: %v", name, err)
				}
				continue
			}
			for _, shown := range []string{identity(e), e.label(), stateFile(e, e), e.addr()} {
				if strings.Contains(shown, "hunter2") {
					t.Fatalf("endpoint %q shows the password: %q", name, shown)
				}
			}
			if strings.Contains(e.URL, "hunter2") {
				t.Fatalf("endpoint %q: a URL with a password was accepted: %q", name, e.URL)
			}
		}
	})
}
