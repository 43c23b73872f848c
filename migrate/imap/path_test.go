package imap

import (
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"sync"
	"testing"

	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/migrate"
)

// tap is a TCP proxy in front of a server that keeps every byte each way,
// so a test sees what went over the wire, not what the client says it sent.
type tap struct {
	ln       net.Listener
	mu       sync.Mutex
	up, down bytes.Buffer
}

func startTap(t *testing.T, target string) *tap {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, io.TeeReader(c, tapWriter{tp, &tp.up})); s.Close() }()
			go func() { io.Copy(c, io.TeeReader(s, tapWriter{tp, &tp.down})); c.Close() }()
		}
	}()
	return tp
}

type tapWriter struct {
	tp  *tap
	buf *bytes.Buffer
}

func (w tapWriter) Write(p []byte) (int, error) {
	w.tp.mu.Lock()
	defer w.tp.mu.Unlock()
	return w.buf.Write(p)
}

func (tp *tap) bytes() (up, down []byte) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.up.Bytes()), bytes.Clone(tp.down.Bytes())
}

var (
	appendCmd   = regexp.MustCompile(`(?m)^p\d+ APPEND `)
	plusLiteral = regexp.MustCompile(`\{\d+\+\}\r\n`)
	syncLiteral = regexp.MustCompile(`\{\d+\}\r\n`)
	goAhead     = regexp.MustCompile(`(?m)^\+ `)
)

// TestAppendPathDovecot asserts, from the bytes on the wire to a real
// Dovecot, which way a batch went: one MULTIAPPEND (RFC 3502) with
// non-synchronizing literals (LITERAL+, RFC 7888) by default, which costs
// no round trip per message; one APPEND per message without MULTIAPPEND;
// synchronizing literals, each waiting for Dovecot's "+", without LITERAL+.
// Each way, the batch lands whole and in order.
func TestAppendPathDovecot(t *testing.T) {
	dovecottest.Need(t, dovecot)
	const n = 6
	for _, c := range []struct {
		name                  string
		noMulti, noPlus       bool
		commands, plus, waits int // APPEND commands, LITERAL+ literals, "+" from the server
	}{
		{"multiappend+literal+", false, false, 1, n, 0},
		{"append+literal+", true, false, n, n, 0},
		{"multiappend-sync", false, true, 1, 0, n},
		{"append-sync", true, true, n, 0, n},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := dovecot.AddUser()
			if err != nil {
				t.Fatal(err)
			}
			tp := startTap(t, dovecot.IMAP)
			cfg := dovecotConfig(t, u)
			cfg.Addr, cfg.TLS, cfg.TLSConfig = tp.ln.Addr().String(), TLSNone, nil
			cfg.noMultiAppend, cfg.noLiteralPlus = c.noMulti, c.noPlus
			p := New(cfg).Pipe(1)
			var msgs []migrate.Outgoing
			for i := range n {
				msgs = append(msgs, migrate.Outgoing{Body: migrate.BodyFromBytes(testMessage(i, 300))})
			}
			var res []migrate.AppendResult
			p.Send(context.Background(), "INBOX", msgs, func(r []migrate.AppendResult) { res = r })
			p.Close()
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("message %d: %v", i, r.Err)
				}
			}
			up, down := tp.bytes()
			if !bytes.Contains(down, []byte("MULTIAPPEND")) || !bytes.Contains(down, []byte("LITERAL+")) {
				t.Fatalf("Dovecot did not offer MULTIAPPEND and LITERAL+: %q", down)
			}
			cmds, plus, sync := len(appendCmd.FindAll(up, -1)), len(plusLiteral.FindAll(up, -1)), len(syncLiteral.FindAll(up, -1))
			waits := len(goAhead.FindAll(down, -1))
			if cmds != c.commands || plus != c.plus || sync != n-c.plus || waits != c.waits {
				t.Fatalf("on the wire: %d APPEND commands, %d LITERAL+ and %d synchronizing literals, %d go-aheads; want %d, %d, %d, %d",
					cmds, plus, sync, waits, c.commands, c.plus, n-c.plus, c.waits)
			}
			ids, _, _ := uidOrder(t, dovecotConfig(t, u), "INBOX")
			if len(ids) != n {
				t.Fatalf("%d messages in INBOX, want %d", len(ids), n)
			}
			for i, id := range ids {
				if want := "<pipe-" + string(rune('0'+i)) + "@test>"; id != want {
					t.Fatalf("position %d holds %s, want %s", i, id, want)
				}
			}
		})
	}
}
