package couriertest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/rawpop3"
)

var (
	srv    *Server
	srvErr error
)

func TestMain(m *testing.M) { os.Exit(Main(m, &srv, &srvErr)) }

// msg8bit has raw UTF-8 in its headers (RFC 6532) and a body line that POP3
// must dot-stuff.
var msg8bit = []byte("From: Zo\xc3\xab <zoe@example.org>\r\n" +
	"To: user@example.test\r\n" +
	"Subject: R\xc3\xa9union\r\n" +
	"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n" +
	"Message-ID: <r1@example.org>\r\n" +
	"\r\n" +
	"Bonjour,\r\n" +
	".dot\r\n" +
	"fin\r\n")

var plain = []byte("From: a@example.org\r\nSubject: two\r\nMessage-ID: <r2@example.org>\r\n\r\nsecond\r\n.\r\n")

func need(t *testing.T) *Server { return mailserver.Need(t, "courier", srv, srvErr) }

func TestStartup(t *testing.T) {
	s := need(t)
	t.Logf("Courier started in %v", s.Startup())
}

// TestIMAP: TLS verified against the CA on imapd-ssl and after STARTTLS;
// the personal namespace is "INBOX." with "." and a top-level name is
// refused.
func TestIMAP(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := mailserver.TLSConfig(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(s.Addrs().IMAPS, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("imaps: %v\n%s", err, s.Log())
	}
	defer c.Close()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("login: %v\n%s", err, s.Log())
	}
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "INBOX." || ns.Personal[0].Delim != '.' {
		t.Errorf("personal namespace = %+v, want INBOX. with delimiter .", ns.Personal)
	}
	var ierr *imap.Error
	if err := c.Create("Junk", nil).Wait(); !errors.As(err, &ierr) || ierr.Type != imap.StatusResponseTypeNo {
		t.Errorf("CREATE Junk: %v, want NO", err)
	} else {
		t.Logf("CREATE Junk: %v", err)
	}
	if err := c.Create("INBOX.Junk", nil).Wait(); err != nil {
		t.Errorf("CREATE INBOX.Junk: %v", err)
	}

	st, err := imapclient.DialStartTLS(s.Addrs().IMAP, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("STARTTLS: %v\n%s", err, s.Log())
	}
	defer st.Close()
	if err := st.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
}

func pop3s(t *testing.T, s *Server) *rawpop3.Conn {
	t.Helper()
	cfg, err := mailserver.TLSConfig(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	p, err := rawpop3.Dial(s.Addrs().POP3S, cfg)
	if err != nil {
		t.Fatalf("pop3s: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPOP3: seeded messages over POP3. Courier serves a message whose
// headers hold 8-bit bytes as a stand-in (a notice with the original
// attached as message/global, RFC 6532 section 3.7) unless the client sent
// the UTF8 command (RFC 6856); then it serves the message byte for byte.
func TestPOP3(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(u, [][]byte{msg8bit, plain}); err != nil {
		t.Fatal(err)
	}

	p := pop3s(t, s)
	capa, err := p.Multi("CAPA")
	if err != nil || !bytes.Contains(capa, []byte("UTF8")) {
		t.Errorf("CAPA: %q, %v: no UTF8", capa, err)
	}
	if err := p.Login(u.Name, u.Password); err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	got, err := p.Multi("RETR 1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, msg8bit) || !bytes.Contains(got, []byte("message/global")) {
		t.Errorf("RETR 1 without UTF8: want a stand-in with the original as message/global, got %q", got)
	}
	t.Logf("RETR 1 without UTF8 (%d bytes):\n%s", len(got), got)
	if got, err := p.Multi("RETR 2"); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("RETR 2: %q, %v; want %q", got, err, plain)
	}

	q := pop3s(t, s)
	if _, err := q.Cmd("UTF8"); err != nil {
		t.Fatalf("UTF8: %v", err)
	}
	if err := q.Login(u.Name, u.Password); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Multi("RETR 1"); err != nil || !bytes.Equal(got, msg8bit) {
		t.Errorf("RETR 1 after UTF8:\n got %q, %v\nwant %q", got, err, msg8bit)
	}

	// Plaintext POP3 offers STLS (RFC 2595).
	r, err := rawpop3.Dial(s.Addrs().POP3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if capa, err := r.Multi("CAPA"); err != nil || !bytes.Contains(capa, []byte("STLS\r\n")) {
		t.Fatalf("CAPA: %q, %v: no STLS", capa, err)
	}
	cfg, _ := mailserver.TLSConfig(s.CAFile())
	if err := r.StartTLS(cfg); err != nil {
		t.Fatalf("STLS: %v", err)
	}
	if err := r.Login(u.Name, u.Password); err != nil {
		t.Fatalf("login after STLS: %v", err)
	}
}

// TestInternalDate: IMAP shows a seeded file's mtime as INTERNALDATE.
func TestInternalDate(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(u, [][]byte{plain, plain}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := mailserver.TLSConfig(s.CAFile())
	c, err := imapclient.DialTLS(s.Addrs().IMAPS, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{InternalDate: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !msgs[1].InternalDate.Equal(msgs[0].InternalDate.Add(time.Second)) {
		t.Errorf("INTERNALDATE not one second apart: %+v", msgs)
	}
}

// TestPOP3ConnectionsPerIP: more than Debian's 4 POP3 connections from
// 127.0.0.1 at once are served (the harness raises couriertcpd's
// -maxperip), so parallel tests do not trip over the limit.
func TestPOP3ConnectionsPerIP(t *testing.T) {
	s := need(t)
	for range 6 {
		pop3s(t, s)
	}
}

// TestPipelinedAfterLogin witnesses a Courier behaviour that matters to a
// pipelining client: commands sent behind LOGIN, before its OK, are lost.
// imaplogin reads them into its buffer, then execs imapd for the session,
// which never sees them (RFC 9051 section 5.5 lets a client pipeline them).
func TestPipelinedAfterLogin(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addrs().IMAP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "a LOGIN %s %s\r\nb NOOP\r\n", u.Name, u.Password)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "a OK") {
		t.Fatalf("LOGIN: %q, %v", l, err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if l, err := r.ReadString('\n'); err == nil {
		t.Fatalf("the NOOP sent behind LOGIN was answered (%q): Courier no longer loses pipelined commands", l)
	}
	// The session itself works: the next command is answered.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "c NOOP\r\n")
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "c OK") {
		t.Fatalf("NOOP after LOGIN's OK: %q, %v", l, err)
	}
}
