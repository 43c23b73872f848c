package dovecottest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/mailserver"
)

// TestRestart: Restart brings Dovecot back on the same ports, with the mail
// it held: a message seeded before is fetched after, byte for byte.
func TestRestart(t *testing.T) {
	s := startOwn(t)
	u, err := s.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("From: a@example.org\r\nSubject: kept\r\nMessage-ID: <kept@example.org>\r\n\r\nstill here\r\n")
	if err := s.Seed(u, [][]byte{msg}); err != nil {
		t.Fatal(err)
	}
	before := s.IMAPS
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.IMAPS != before {
		t.Fatalf("IMAPS moved from %s to %s", before, s.IMAPS)
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatalf("after restart: %v\n%s", err, s.Log())
	}
	defer c.Close()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sec := &imapv2.FetchItemBodySection{Peek: true}
	got, err := c.Fetch(imapv2.SeqSetNum(1), &imapv2.FetchOptions{BodySection: []*imapv2.FetchItemBodySection{sec}}).Collect()
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].FindBodySection(sec), msg) {
		t.Fatalf("after restart INBOX gives %d message(s) (%v), want the seeded one", len(got), err)
	}
}

// startOwn starts a Dovecot of the test's own, stopped when it ends; it
// skips the test without one, except under CI=true, where it fails.
func startOwn(t *testing.T) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		if mailserver.Required("dovecot") {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(s.Stop)
	return s
}
