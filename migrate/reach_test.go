package migrate_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/migrate/imap"
	"github.com/mailmove/mailmove/migrate/pop3"
	"github.com/mailmove/mailmove/migrate/pop3/pop3test"
)

func popAt(e *env, addr string, mode pop3.TLSMode, timeout time.Duration) *pop3.Source {
	return pop3.NewSource(pop3.SourceConfig{Addr: addr, User: "u", Password: func() (string, error) { return "p", nil },
		Options: pop3.Options{TLS: mode, TLSConfig: e.clientTLS, Timeout: timeout}})
}

// TestWrongPort: a port where another server answers, or TLS where there is
// none, stops the run at once with what is there and what to use, never
// retried as if the network had failed.
func TestWrongPort(t *testing.T) {
	e := newEnv(t, []string{msg(1, true)})
	plain := &pop3test.Server{User: "u", Pass: "p", Messages: e.pop.Messages}
	plainAddr, err := plain.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	old := &pop3test.Server{User: "u", Pass: "p", Messages: e.pop.Messages, NoCAPA: true} // popa3d: no CAPA, no STLS
	oldAddr, err := old.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	imapAt := func(mode imap.TLSMode) migrate.Destination {
		return imap.New(imap.Config{Addr: e.imapAddr, User: "u", Password: func() (string, error) { return "p", nil },
			TLS: mode, TLSConfig: e.clientTLS, Timeout: time.Second})
	}
	for _, tc := range []struct {
		name string
		src  migrate.Source
		dst  migrate.Destination
		want string
	}{
		{"pop3s at an IMAP port", popAt(e, e.imapAddr, pop3.TLSImplicit, 5*time.Second), e.dst, "is an IMAP server, not a POP3 server: use imap://"},
		{"pop3s at a plaintext port", popAt(e, plainAddr, pop3.TLSImplicit, 5*time.Second), e.dst, "is a POP3 port without TLS"},
		{"imaps at a POP3 port", e.src, imap.New(imap.Config{Addr: e.pop.Addr(), User: "u", Password: func() (string, error) { return "p", nil },
			TLSConfig: e.clientTLS, Timeout: 5 * time.Second}), "is a POP3 server, not an IMAP server"},
		// A TLS port waits for a handshake: the greeting never comes.
		{"pop3 at a POP3 TLS port", popAt(e, e.pop.Addr(), pop3.TLSStartTLS, time.Second), e.dst, "is a port that expects TLS from the start, not a POP3 server without TLS at first: use pop3s://"},
		{"imap at an IMAP TLS port", e.src, imapAt(imap.TLSStartTLS), "is a port that expects TLS from the start, not an IMAP server without TLS at first: use imaps://"},
		{"pop3 at a server that refuses STLS", popAt(e, oldAddr, pop3.TLSStartTLS, 5*time.Second), e.dst, "POP3 server without TLS on this port (it refused STLS"},
		{"pop3 at a server without STLS", popAt(e, plainAddr, pop3.TLSStartTLS, 5*time.Second), e.dst, "POP3 server without TLS on this port (its capabilities have no STLS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := migrate.Run(context.Background(), tc.src, tc.dst, e.state, migrate.Options{})
			var fatal *migrate.Fatal
			if !errors.As(err, &fatal) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want a fatal %q", err, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s: retried?", d)
			}
			tc.src.Close()
		})
	}
}

// TestUnreachable: a port where nothing listens, or a server that never
// greets, is tried three times within seconds, then the run stops saying so.
func TestUnreachable(t *testing.T) {
	e := newEnv(t, []string{msg(1, true)})
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	var held []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never greeted
		}
	}()
	for _, tc := range []struct{ name, addr, want string }{
		{"nothing listening", deadAddr, "connection refused"},
		{"never greets", silent.Addr().String(), "no greeting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := popAt(e, tc.addr, pop3.TLSNone, 300*time.Millisecond)
			defer src.Close()
			var notes []string
			obs := &noteRecorder{notes: &notes}
			_, err := migrate.Run(context.Background(), src, e.dst, e.state, migrate.Options{Observer: obs})
			var un *migrate.Unreachable
			if !errors.As(err, &un) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v", err)
			}
			tries := 0
			for _, n := range notes {
				if strings.Contains(n, "trying again in a moment") {
					tries++
				}
			}
			if tries != 2 {
				t.Errorf("%d retries noted, want 2: %q", tries, notes)
			}
		})
	}
}

type noteRecorder struct {
	migrate.NopObserver
	notes *[]string
}

func (n *noteRecorder) Note(s string) { *n.notes = append(*n.notes, s) }
