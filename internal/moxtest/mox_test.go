package moxtest

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/childserver"
	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/testcert"
)

// The tests below are witnesses: they assert what mox v0.0.17 was seen to do,
// so that a new mox that behaves differently fails here first, and the notes
// (and mailmove's handling of mox) get updated with it.

var (
	srv       *Server
	startErr  error
	startTook time.Duration
)

func TestMain(m *testing.M) {
	t0 := time.Now()
	srv, startErr = Start()
	startTook = time.Since(t0)
	if startErr != nil {
		fmt.Fprintf(os.Stderr, "\n*** mox tests SKIPPED: %v\n*** (make goservers builds it; CI=true makes this a failure)\n\n", startErr)
	}
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	os.Exit(code)
}

func need(t *testing.T) *Server {
	t.Helper()
	return childserver.Need(t, "mox", srv, startErr)
}

func addUser(t *testing.T, s *Server) mailserver.User {
	t.Helper()
	t0 := time.Now()
	u, err := s.AddUser()
	if err != nil {
		t.Fatalf("AddUser: %v\nmox's log:\n%s", err, s.Log())
	}
	t.Logf("AddUser took %v", time.Since(t0))
	return u
}

func login(t *testing.T, s *Server, u mailserver.User, tr *childserver.Transcript) *imapclient.Client {
	t.Helper()
	opts, err := childserver.Options(s.CAPEM(), tr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(s.Addrs().IMAPS, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addrs().IMAPS, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("login %s: %v\nmox's log:\n%s", u.Name, err, s.Log())
	}
	return c
}

func TestStartUp(t *testing.T) {
	s := need(t)
	t.Logf("%s started in %v: IMAPS %s, IMAP %s", s.Version(), startTook, s.Addrs().IMAPS, s.Addrs().IMAP)
	if a := s.Addrs(); a.POP3 != "" || a.POP3S != "" {
		t.Errorf("mox has no POP3, yet Addrs = %+v", a)
	}
	// A second server beside the first: ports and directories do not clash.
	t0 := time.Now()
	s2, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	dir := s2.Dir()
	s2.Stop()
	s2.Stop() // twice is fine
	t.Logf("second mox started in %v", took)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left %s behind: %v", dir, err)
	}
}

// TestTLS: implicit TLS and STARTTLS both verify against our CA with
// ServerName 127.0.0.1, another CA is refused, and mox refuses LOGIN in
// plaintext (its listener's NoRequireSTARTTLS is off).
func TestTLS(t *testing.T) {
	s := need(t)
	u := addUser(t, s)

	c, err := childserver.Login(s.Addrs().IMAPS, s.CAPEM(), u.Name, u.Password)
	if err != nil {
		t.Fatalf("IMAPS: %v\n%s", err, s.Log())
	}
	c.Close()

	c, err = childserver.DialStartTLS(s.Addrs().IMAP, s.CAPEM())
	if err != nil {
		t.Fatalf("STARTTLS: %v\n%s", err, s.Log())
	}
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	c.Close()

	other, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if c, err := childserver.DialTLS(s.Addrs().IMAPS, other.CAPEM); !errors.As(err, &unknown) {
		if c != nil {
			c.Close()
		}
		t.Errorf("IMAPS with another CA: err = %v, want x509.UnknownAuthorityError", err)
	}

	c, err = imapclient.DialInsecure(s.Addrs().IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps := c.Caps()
	if !caps.Has(imap.CapStartTLS) || !caps.Has(imap.CapLoginDisabled) {
		t.Errorf("plaintext port: capabilities %v, want STARTTLS and LOGINDISABLED", caps)
	}
	err = c.Login(u.Name, u.Password).Wait()
	t.Logf("LOGIN before STARTTLS: %v", err)
	if err == nil {
		t.Errorf("mox took a plaintext LOGIN")
	}
}

// capsSeen are the capabilities that matter to mailmove's appender, as
// mox v0.0.17 announces them after LOGIN: the token, "" for none.
var capsSeen = map[string]string{
	"LITERAL+":    "LITERAL+",
	"MULTIAPPEND": "MULTIAPPEND",
	"UIDPLUS":     "UIDPLUS",
	"SPECIAL-USE": "SPECIAL-USE",
	"UTF8=ACCEPT": "UTF8=ACCEPT",
	"APPENDLIMIT": "APPENDLIMIT=9223372036854775807", // math.MaxInt64: no limit
}

func TestCapabilities(t *testing.T) {
	s := need(t)
	u := addUser(t, s)
	c := login(t, s, u, nil)
	caps := c.Caps()
	var all []string
	for cp := range caps {
		all = append(all, string(cp))
	}
	slices.Sort(all)
	t.Logf("CAPABILITY after LOGIN: %s", strings.Join(all, " "))
	for name, want := range capsSeen {
		if got := childserver.CapToken(caps, name); got != want {
			t.Errorf("%s: announced as %q, mox v0.0.17 was seen with %q", name, got, want)
		}
	}
}

func TestNamespace(t *testing.T) {
	s := need(t)
	u := addUser(t, s)
	var tr childserver.Transcript
	c := login(t, s, u, &tr)
	if _, err := c.Namespace().Wait(); err != nil {
		t.Fatal(err)
	}
	got := tr.Lines("* NAMESPACE")
	t.Logf("%q", got)
	if want := []string{`* NAMESPACE (("" "/")) NIL NIL`}; !slices.Equal(got, want) {
		t.Errorf("NAMESPACE = %q, want %q", got, want)
	}
}

// TestListSpecialUse: a new mox account has the five special-use folders
// (mox's InitialMailboxes default), and the inbox is named "Inbox" on the
// wire, which go-imap reports as INBOX (RFC 3501 section 5.1: INBOX is
// case-insensitive).
func TestListSpecialUse(t *testing.T) {
	s := need(t)
	u := addUser(t, s)
	var tr childserver.Transcript
	c := login(t, s, u, &tr)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append(tr.Lines("T2 "), tr.Lines("* LIST")...) {
		t.Log(l)
	}
	got := map[string]string{}
	for _, m := range list {
		var special []string
		for _, a := range m.Attrs {
			switch a {
			case imap.MailboxAttrSent, imap.MailboxAttrTrash, imap.MailboxAttrJunk, imap.MailboxAttrDrafts, imap.MailboxAttrArchive, imap.MailboxAttrAll, imap.MailboxAttrFlagged:
				special = append(special, string(a))
			}
		}
		got[m.Mailbox] = strings.Join(special, " ")
	}
	want := map[string]string{"INBOX": "", "Sent": `\Sent`, "Trash": `\Trash`, "Junk": `\Junk`, "Drafts": `\Drafts`, "Archive": `\Archive`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("LIST special-use = %v, want %v", got, want)
	}
	if !slices.Contains(tr.Lines("* LIST"), `* LIST () "/" Inbox`) {
		t.Errorf("no `* LIST () \"/\" Inbox` in %q", tr.Lines("* LIST"))
	}
}

// eightBit has raw UTF-8 in Subject and From (RFC 6532 style, no encoded
// words), as old mailboxes hold them.
var eightBit = []byte("From: J\xc3\xbcrgen <j@example.test>\r\n" +
	"To: b@example.test\r\n" +
	"Subject: Gr\xc3\xbc\xc3\x9fe \xe2\x80\x93 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\r\n" +
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
	"Message-ID: <eight-bit@example.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"K\xc3\xa4se.\r\n")

// TestAppend8BitHeader: a plain APPEND (no UTF8=ACCEPT to enable) of a
// message with raw 8-bit header bytes is taken and served back byte for
// byte.
func TestAppend8BitHeader(t *testing.T) {
	s := need(t)
	u := addUser(t, s)
	c := login(t, s, u, nil)
	uid, err := childserver.Append(c, "INBOX", eightBit, nil)
	if err != nil {
		t.Fatalf("APPEND: %v\n%s", err, s.Log())
	}
	if uid == 0 {
		t.Errorf("no APPENDUID from a server with UIDPLUS")
	}
	got, err := childserver.FetchAll(c, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("INBOX has %d messages, want 1", len(got))
	}
	if !bytes.Equal(got[0].Body, eightBit) {
		t.Errorf("stored message differs:\n got %q\nwant %q", got[0].Body, eightBit)
	}
}

// TestParallelAppend: unlike maddy, mox takes APPENDs on separate
// connections at the same moment.
func TestParallelAppend(t *testing.T) {
	s := need(t)
	u := addUser(t, s)
	const conns, rounds = 6, 5 // mox allows 30 connections per IP
	var cs []*imapclient.Client
	for range conns {
		cs = append(cs, login(t, s, u, nil))
	}
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, conns)
		start := make(chan struct{})
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := fmt.Appendf(nil, "Subject: parallel %d.%d\r\nMessage-ID: <p%d.%d@example.test>\r\n\r\nx\r\n", round, i, round, i)
				<-start
				_, errs[i] = childserver.Append(c, "INBOX", msg, nil)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, connection %d: %v", round, i, err)
			}
		}
	}
	stored, err := childserver.FetchAll(cs[0], "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != conns*rounds {
		t.Errorf("INBOX has %d messages after %d APPENDs", len(stored), conns*rounds)
	}
}

// TestAutomaticJunkFlags: the flags an APPEND gives are not the flags
// stored. mox's default account settings (AutomaticJunkFlags, with
// JunkMailboxRegexp ^(junk|spam) and NeutralMailboxRegexp
// ^(inbox|introbox|neutral|postmaster|dmarc|tlsrpt|rejects)) set $Junk and
// $NotJunk from the mailbox's name: the inbox is neutral and loses both,
// \Junk gets $Junk, any other mailbox gets $NotJunk. A migration that
// compares flags after APPEND must expect this.
func TestAutomaticJunkFlags(t *testing.T) {
	s := need(t)
	u := addUser(t, s)
	var tr childserver.Transcript
	c := login(t, s, u, &tr)
	defer func() {
		for _, l := range tr.Lines("* ") {
			if strings.Contains(l, " FETCH ") {
				t.Log(l)
			}
		}
	}()
	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		mailbox string
		flags   []imap.Flag
		want    string
	}{
		{"INBOX", []imap.Flag{"$NotJunk", imap.FlagSeen}, `\Seen`},
		{"INBOX", []imap.Flag{"$Junk"}, ``},
		{"INBOX", nil, ``},
		{"Junk", []imap.Flag{"$NotJunk", imap.FlagSeen}, `\Seen $Junk`},
		{"Junk", nil, `$Junk`},
		{"Archive", []imap.Flag{"$Junk"}, `$NotJunk`},
		{"Archive", nil, `$NotJunk`},
		{"Projects", []imap.Flag{imap.FlagFlagged}, `\Flagged $NotJunk`},
		{"Projects", []imap.Flag{"$NotJunk"}, `$NotJunk`},
	} {
		msg := fmt.Appendf(nil, "Subject: flags %d\r\nMessage-ID: <f%d@example.test>\r\n\r\nx\r\n", i, i)
		uid, err := childserver.Append(c, tc.mailbox, msg, &imap.AppendOptions{Flags: tc.flags})
		if err != nil {
			t.Fatalf("APPEND %s %v: %v", tc.mailbox, tc.flags, err)
		}
		if _, err := c.Select(tc.mailbox, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		bufs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil || len(bufs) != 1 {
			t.Fatalf("FETCH %s UID %d: %v, %d messages", tc.mailbox, uid, err, len(bufs))
		}
		var got []string
		for _, f := range bufs[0].Flags {
			got = append(got, string(f))
		}
		t.Logf("APPEND %s %v -> FLAGS (%s)", tc.mailbox, tc.flags, strings.Join(got, " "))
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("APPEND %s with %v: FLAGS (%s), want (%s)", tc.mailbox, tc.flags, g, tc.want)
		}
	}
}

// TestSeed: a fresh user's INBOX is empty, Seed keeps order, bytes and the
// one-second INTERNALDATE steps, and users do not see each other's mail.
func TestSeed(t *testing.T) {
	s := need(t)
	u1, u2 := addUser(t, s), addUser(t, s)
	msgs := [][]byte{
		[]byte("Subject: one\r\nMessage-ID: <1@example.test>\r\n\r\n1\r\n"),
		[]byte("Subject: two\r\nMessage-ID: <2@example.test>\r\n\r\n2\r\n"),
		eightBit,
	}
	if err := s.Seed(u1, msgs); err != nil {
		t.Fatalf("Seed: %v\n%s", err, s.Log())
	}
	got, err := childserver.FetchAll(login(t, s, u1, nil), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("INBOX has %d messages, want %d", len(got), len(msgs))
	}
	for i, m := range got {
		if !bytes.Equal(m.Body, msgs[i]) {
			t.Errorf("message %d: %q, want %q", i, m.Body, msgs[i])
		}
		if want := fmt.Sprintf("2024-01-01 00:00:%02d", i); m.InternalDate != want {
			t.Errorf("message %d: INTERNALDATE %s, want %s", i, m.InternalDate, want)
		}
	}
	other, err := childserver.FetchAll(login(t, s, u2, nil), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(other) != 0 {
		t.Errorf("%s sees %d messages in a fresh INBOX", u2.Name, len(other))
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("MAILMOVE_SERVERS_DIR", t.TempDir())
	_, err := Start()
	if !errors.Is(err, childserver.ErrNotBuilt) || !strings.Contains(err.Error(), "make goservers") || !strings.Contains(err.Error(), childserver.BuildScript) {
		t.Errorf("Start without a binary: %v, want an error naming make goservers and %s", err, childserver.BuildScript)
	}
}
