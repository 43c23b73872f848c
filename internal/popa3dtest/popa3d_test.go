package popa3dtest

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/rawpop3"
)

var (
	srv    *Server
	srvErr error
)

func TestMain(m *testing.M) { os.Exit(Main(m, &srv, &srvErr)) }

// msg8bit has raw UTF-8 in its headers, a body line POP3 must dot-stuff
// and a ">From " line an mboxrd reader would unquote.
var msg8bit = []byte("From: Zo\xc3\xab <zoe@example.org>\r\n" +
	"To: user@example.test\r\n" +
	"Subject: R\xc3\xa9union\r\n" +
	"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n" +
	"Message-ID: <r1@example.org>\r\n" +
	"\r\n" +
	"Bonjour,\r\n" +
	".dot\r\n" +
	">From the minutes\r\n" +
	"fin\r\n")

func need(t *testing.T) *Server { return mailserver.Need(t, "popa3d", srv, srvErr) }

func login(t *testing.T, s *Server, u mailserver.User) *rawpop3.Conn {
	t.Helper()
	p, err := rawpop3.Dial(s.Addrs().POP3, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Login(u.Name, u.Password); err != nil {
		t.Fatalf("login: %v\n%s", err, s.Log())
	}
	return p
}

func TestStartup(t *testing.T) {
	s := need(t)
	t.Logf("popa3d started in %v", s.Startup())
}

// TestRetr: seeded messages come back byte for byte; popa3d has neither
// CAPA (RFC 2449) nor STLS (RFC 2595) and answers both with a bare -ERR.
func TestRetr(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("From: a@example.org\r\nSubject: two\r\nMessage-ID: <r2@example.org>\r\n\r\nsecond\r\n\r\n")
	if err := s.Seed(u, [][]byte{msg8bit, plain}); err != nil {
		t.Fatal(err)
	}
	p := login(t, s, u)
	for _, cmd := range []string{"CAPA", "STLS"} {
		if r, err := p.Cmd(cmd); err == nil || r != "-ERR" {
			t.Errorf("%s: %q, want -ERR", cmd, r)
		}
	}
	list, err := p.Multi("LIST")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("1 %d\r\n2 %d\r\n", len(msg8bit), len(plain)); string(list) != want {
		t.Errorf("LIST = %q, want %q (sizes as served, CRLF counted)", list, want)
	}
	for i, want := range [][]byte{msg8bit, plain} {
		got, err := p.Multi(fmt.Sprintf("RETR %d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("RETR %d:\n got %q\nwant %q", i+1, got, want)
		}
	}
}

// TestUIDLCollision witnesses popa3d's UIDL: a digest of a few header
// fields (Message-ID, Date, Received among them), not of the message. Two
// different messages with none of those fields get the same UIDL, which
// RFC 1939 section 7 forbids ("unique-id ... unique within a maildrop").
func TestUIDLCollision(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	a := []byte("Subject: one\r\n\r\nfirst\r\n")
	b := []byte("Subject: two\r\n\r\nsecond, different\r\n")
	c := []byte("Subject: two\r\nMessage-ID: <c@example.org>\r\n\r\nsecond, different\r\n")
	if err := s.Seed(u, [][]byte{a, b, c}); err != nil {
		t.Fatal(err)
	}
	uidl, err := login(t, s, u).Multi("UIDL")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(uidl))
	if len(f) != 6 || f[1] != f[3] || f[3] == f[5] {
		t.Fatalf("UIDL = %q: want 1 and 2 equal, 3 different", uidl)
	}
	t.Logf("UIDL:\n%s", uidl)
}

// TestSeedRefuses: messages popa3d's mailbox cannot hold unchanged.
func TestSeedRefuses(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{
		"Subject: x\r\n\r\nFrom here on, a second message\r\n",
		"Subject: no body, no empty line\r\n",
	} {
		if err := s.Seed(u, [][]byte{[]byte(m)}); err == nil {
			t.Errorf("Seed(%q) = nil, want an error", m)
		}
	}
}
