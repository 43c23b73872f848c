package cyrustest

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/rawpop3"
	"github.com/mailmove/mailmove/migrate"
	mimap "github.com/mailmove/mailmove/migrate/imap"
)

var (
	srv    *Server
	srvErr error
)

func TestMain(m *testing.M) { os.Exit(Main(m, &srv, &srvErr)) }

// msg8bit has raw UTF-8 in its headers (RFC 6532 style, no encoded words)
// and a body line that POP3 must dot-stuff.
var msg8bit = []byte("From: Zo\xc3\xab <zoe@example.org>\r\n" +
	"To: user@example.test\r\n" +
	"Subject: R\xc3\xa9union\r\n" +
	"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n" +
	"Message-ID: <r1@example.org>\r\n" +
	"\r\n" +
	"Bonjour,\r\n" +
	".dot\r\n" +
	"fin\r\n")

var plain = []byte("From: a@example.org\r\nSubject: two\r\nMessage-ID: <r2@example.org>\r\n\r\nsecond\r\n")

func need(t *testing.T) *Server {
	return mailserver.Need(t, "cyrus", srv, srvErr)
}

func dialIMAPS(t *testing.T, s *Server, u mailserver.User) *imapclient.Client {
	t.Helper()
	cfg, err := mailserver.TLSConfig(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(s.Addrs().IMAPS, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("imaps: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("login %s: %v\n%s", u.Name, err, s.Log())
	}
	return c
}

func TestStartup(t *testing.T) {
	s := need(t)
	t.Logf("Cyrus started in %v", s.Startup())
}

// TestIMAP: TLS verified against the CA on imaps and after STARTTLS, and
// the namespace Debian's imapd.conf gives (altnamespace: no,
// unixhierarchysep: no): personal mailboxes are under "INBOX." and a
// top-level name is refused.
func TestIMAP(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	c := dialIMAPS(t, s, u)
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "INBOX." || ns.Personal[0].Delim != '.' {
		t.Errorf("personal namespace = %+v, want INBOX. with delimiter .", ns.Personal)
	}
	for _, cap := range []imap.Cap{imap.CapUIDPlus, imap.CapLiteralPlus, imap.CapMultiAppend, imap.CapSpecialUse} {
		if !c.Caps().Has(cap) {
			t.Errorf("no %s in CAPABILITY", cap)
		}
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

	cfg, _ := mailserver.TLSConfig(s.CAFile())
	st, err := imapclient.DialStartTLS(s.Addrs().IMAP, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer st.Close()
	if err := st.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
}

// TestSeedPOP3: seeded messages come back over POP3 exactly as seeded, 8-bit
// headers and all (the reconstruct path keeps bytes that APPEND would
// alter), and IMAP shows the seeding times as INTERNALDATE.
func TestSeedPOP3(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(u, [][]byte{msg8bit, plain}); err != nil {
		t.Fatal(err)
	}
	cfg, err := mailserver.TLSConfig(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	p, err := rawpop3.Dial(s.Addrs().POP3S, cfg)
	if err != nil {
		t.Fatalf("pop3s: %v\n%s", err, s.Log())
	}
	defer p.Close()
	if err := p.Login(u.Name, u.Password); err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	for i, want := range [][]byte{msg8bit, plain} {
		got, err := p.Multi("RETR " + string(rune('1'+i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("RETR %d:\n got %q\nwant %q", i+1, got, want)
		}
	}

	// Plaintext POP3 offers STLS before login (RFC 2595).
	q, err := rawpop3.Dial(s.Addrs().POP3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	capa, err := q.Multi("CAPA")
	if err != nil || !bytes.Contains(capa, []byte("STLS\r\n")) {
		t.Fatalf("CAPA: %q, %v: no STLS", capa, err)
	}
	if err := q.StartTLS(cfg); err != nil {
		t.Fatalf("STLS: %v", err)
	}

	c := dialIMAPS(t, s, u)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{InternalDate: true, RFC822Size: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !msgs[1].InternalDate.Equal(msgs[0].InternalDate.Add(time.Second)) || msgs[0].RFC822Size != int64(len(msg8bit)) {
		t.Errorf("INTERNALDATE/RFC822.SIZE not as seeded: %+v %+v", msgs[0], msgs[1])
	}
}

// appendMsg APPENDs m to u's INBOX and returns the message as stored.
func appendMsg(t *testing.T, s *Server, u mailserver.User, m []byte) ([]byte, error) {
	t.Helper()
	c := dialIMAPS(t, s, u)
	a := c.Append("INBOX", int64(len(m)), nil)
	a.Write(m)
	a.Close()
	if _, err := a.Wait(); err != nil {
		return nil, err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		t.Fatalf("fetch the appended message: %v", err)
	}
	return msgs[0].BodySection[0].Bytes, nil
}

// TestAppend8bitDefault witnesses the fault mailmove guards against: with
// Debian's reject8bit: no, Cyrus accepts an APPEND with 8-bit header bytes
// and stores each of those bytes as 'X' (the body is left alone).
func TestAppend8bitDefault(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendMsg(t, s, u, msg8bit)
	if err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	hdrEnd := bytes.Index(msg8bit, []byte("\r\n\r\n"))
	want := bytes.Clone(msg8bit)
	for i := 0; i < hdrEnd; i++ {
		if want[i] >= 0x80 {
			want[i] = 'X'
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stored:\n got %q\nwant %q", got, want)
	}
}

// TestAppend8bitReject: with reject8bit: yes the same APPEND is refused.
func TestAppend8bitReject(t *testing.T) {
	need(t)
	s, err := StartWith(Options{Reject8bit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	_, err = appendMsg(t, s, u, msg8bit)
	var ierr *imap.Error
	if !errors.As(err, &ierr) || ierr.Type != imap.StatusResponseTypeNo || !strings.Contains(ierr.Text, "non-ASCII") {
		t.Fatalf("APPEND with reject8bit: yes: %v, want NO ... non-ASCII characters in headers", err)
	}
	t.Logf("APPEND: %v", err)
}

// TestFetchLiteral8: Cyrus answers BODY[] of a message holding a NUL byte
// with a literal8 (~{n}), which go-imap cannot read: mailmove's destination
// reads it whole all the same (it compares such messages by content), and
// the message after it too.
func TestFetchLiteral8(t *testing.T) {
	s := need(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	nul := []byte("From: a@example.org\r\nSubject: nul\r\n\r\nbefore\x00after\r\n")
	if err := s.Seed(u, [][]byte{nul, plain}); err != nil {
		t.Fatal(err)
	}
	cfg, err := mailserver.TLSConfig(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	d := mimap.New(mimap.Config{Addr: s.Addrs().IMAPS, User: u.Name, Password: func() (string, error) { return u.Password, nil },
		TLSConfig: cfg, Timeout: 10 * time.Second})
	defer d.Close()
	var uids []uint32
	if err := d.Scan(t.Context(), "INBOX", 0, func(x migrate.Existing) error { uids = append(uids, x.UID); return nil }); err != nil || len(uids) != 2 {
		t.Fatalf("scan: %v %v", uids, err)
	}
	for i, want := range [][]byte{nul, plain} {
		var got bytes.Buffer
		if err := d.FetchBody(t.Context(), "INBOX", uids[i], &got); err != nil {
			t.Fatalf("fetch UID %d: %v\n%s", uids[i], err, s.Log())
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("UID %d reads %q, want %q", uids[i], got.Bytes(), want)
		}
	}
}
