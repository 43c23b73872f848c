package pop3_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/testcert"
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/migrate/pop3"
	"github.com/mailmove/mailmove/migrate/pop3/pop3test"
)

type fixture struct {
	srv  *pop3test.Server
	addr string
	opts pop3.Options
}

func start(t *testing.T, srv *pop3test.Server) *fixture { return startTLS(t, srv, true) }

// startTLS starts srv; withTLS false gives a server that knows no TLS at all.
func startTLS(t *testing.T, srv *pop3test.Server, withTLS bool) *fixture {
	t.Helper()
	certs, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	if withTLS {
		if srv.TLS, err = certs.TLSConfig(); err != nil {
			t.Fatal(err)
		}
	}
	if srv.User == "" {
		srv.User, srv.Pass = "jean", "secret"
	}
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certs.CAPEM)
	mode := pop3.TLSImplicit
	if srv.STLS {
		mode = pop3.TLSStartTLS
	}
	return &fixture{srv: srv, addr: addr, opts: pop3.Options{
		TLS: mode, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, Timeout: 5 * time.Second,
	}}
}

func (f *fixture) source(pass string) *pop3.Source {
	return f.track(pop3.NewSource(pop3.SourceConfig{
		Addr: f.addr, User: f.srv.User, Options: f.opts,
		Password: func() (string, error) { return pass, nil },
	}))
}

var opened []*pop3.Source

func (f *fixture) track(s *pop3.Source) *pop3.Source {
	opened = append(opened, s)
	return s
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range opened {
		s.Close()
	}
	os.Exit(code)
}

// collect reads every message through the Source, as the pipeline does.
func collect(t *testing.T, s *pop3.Source) ([]migrate.Entry, [][]byte, []error) {
	t.Helper()
	entries, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	var errs []error
	err = s.Retrieve(context.Background(), entries, func(in *migrate.Incoming) error {
		if in.Err != nil {
			errs = append(errs, in.Err)
			bodies = append(bodies, nil)
			return nil
		}
		b, err := io.ReadAll(in.R)
		bodies = append(bodies, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, bodies, errs
}

func withCRLF(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b
	}
	return append(append([]byte{}, b...), "\r\n"...)
}

// TestRetrByteExact serves the contents that break other POP3 clients and
// checks each arrives byte for byte.
func TestRetrByteExact(t *testing.T) {
	long := strings.Repeat("x", 4096)
	cases := map[string]string{
		"dot lines":          "Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n. \r\n...\r\nend\r\n",
		"4096 then dot":      "Subject: a\r\n\r\n" + long + "\r\n.\r\nafter\r\n",
		"4094 then dot":      "Subject: a\r\n\r\n" + long[:4094] + "\r\n.\r\n.\r\n",
		"dot at 4096 offset": "Subject: b\r\n\r\n" + long[:4096-len("Subject: b\r\n\r\n")-2] + "\r\n.\r\nz\r\n",
		"line over 64 KB":    "Subject: c\r\n\r\n" + strings.Repeat("y", 200<<10) + "\r\n.\r\n",
		"LF only":            "Subject: d\n\n.\nline\n..\n",
		"no final CRLF":      "Subject: e\r\n\r\nlast line",
		"starts with dot":    ".Subject: f\r\n\r\nx\r\n",
		"8-bit and NUL":      "Subject: \xe9t\xe9\r\n\r\n\x00\x01\xff\r\n",
	}
	var srv pop3test.Server
	var names []string
	for name, body := range cases {
		names = append(names, name)
		srv.Messages = append(srv.Messages, pop3test.Message{UID: fmt.Sprintf("u%d", len(names)), Data: []byte(body)})
	}
	f := start(t, &srv)
	_, got, errs := collect(t, f.source("secret"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for i, name := range names {
		if want := withCRLF([]byte(cases[name])); !bytes.Equal(got[i], want) {
			t.Errorf("%s: got %d bytes, want %d; differ at %d", name, len(got[i]), len(want), firstDiff(got[i], want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestNoUIDL(t *testing.T) {
	srv := &pop3test.Server{NoUIDL: true, Messages: []pop3test.Message{{Data: []byte("Subject: a\r\n\r\nx\r\n")}}}
	f := start(t, srv)
	s := f.source("secret")
	entries, _, _ := collect(t, s)
	if entries[0].ID != "" || len(s.Notes()) == 0 || !strings.Contains(s.Notes()[0], "no UIDL") {
		t.Fatalf("entries %+v notes %q", entries, s.Notes())
	}
}

func TestErrMidSession(t *testing.T) {
	srv := &pop3test.Server{Messages: []pop3test.Message{
		{UID: "a", Data: []byte("Subject: 1\r\n\r\n1\r\n")},
		{UID: "b", Data: []byte("Subject: 2\r\n\r\n2\r\n")},
		{UID: "c", Data: []byte("Subject: 3\r\n\r\n3\r\n")},
	}}
	srv.Hook = func(conn net.Conn, session int, cmd string) bool {
		if cmd == "RETR 2" {
			fmt.Fprint(conn, "-ERR [SYS/TEMP] message locked\r\n")
			return true
		}
		return false
	}
	f := start(t, srv)
	_, bodies, errs := collect(t, f.source("secret"))
	var perm *migrate.Permanent
	if len(errs) != 1 || !errors.As(errs[0], &perm) || !strings.Contains(errs[0].Error(), "message locked") {
		t.Fatalf("errors %v", errs)
	}
	if string(bodies[2]) != "Subject: 3\r\n\r\n3\r\n" {
		t.Fatalf("the session lost step after -ERR: %q", bodies[2])
	}
}

func TestDroppedConnection(t *testing.T) {
	data := "Subject: big\r\n\r\n" + strings.Repeat("line of text\r\n", 5000)
	srv := &pop3test.Server{Messages: []pop3test.Message{{UID: "a", Data: []byte(data)}}}
	srv.Hook = func(conn net.Conn, session int, cmd string) bool {
		if cmd == "RETR 1" && session == 1 {
			fmt.Fprint(conn, "+OK\r\n")
			conn.Write(pop3test.Stuff([]byte(data))[:30000])
			conn.Close()
			return true
		}
		return false
	}
	f := start(t, srv)
	s := f.source("secret")
	entries, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = s.Retrieve(context.Background(), entries, func(in *migrate.Incoming) error {
		_, err := io.ReadAll(in.R)
		return err
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut message gave %v, want io.ErrUnexpectedEOF", err)
	}
	// The next call reconnects and gets the whole message.
	var got []byte
	err = s.Retrieve(context.Background(), entries, func(in *migrate.Incoming) error {
		got, err = io.ReadAll(in.R)
		return err
	})
	if err != nil || string(got) != data {
		t.Fatalf("after reconnect: %v, %d bytes", err, len(got))
	}
	if logins, _, _ := srv.Counts(); logins != 2 {
		t.Fatalf("%d logins, want 2", logins)
	}
}

func TestAuth(t *testing.T) {
	for _, sasl := range []bool{false, true} {
		srv := &pop3test.Server{SASL: sasl}
		f := start(t, srv)
		_, err := f.source("wrong").List(context.Background())
		var fatal *migrate.Fatal
		if !errors.As(err, &fatal) || !errors.Is(err, pop3.ErrAuth) || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("sasl=%v: %v", sasl, err)
		}
		if _, failures, _ := srv.Counts(); failures != 1 {
			t.Fatalf("sasl=%v: %d login attempts, want 1", sasl, failures)
		}
		if _, err := f.source("secret").List(context.Background()); err != nil {
			t.Fatalf("sasl=%v: good password: %v", sasl, err)
		}
	}
}

func TestSTLS(t *testing.T) {
	srv := &pop3test.Server{STLS: true, Messages: []pop3test.Message{{UID: "a", Data: []byte("Subject: a\r\n\r\nx\r\n")}}}
	f := start(t, srv)
	_, bodies, _ := collect(t, f.source("secret"))
	if len(bodies) != 1 {
		t.Fatal("no message over STLS")
	}

	// A server without STLS is refused when STLS is required: the password
	// is never sent in clear.
	plain := &pop3test.Server{Messages: srv.Messages}
	f2 := startTLS(t, plain, false)
	f2.opts.TLS = pop3.TLSStartTLS
	_, err := f2.source("secret").List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "STLS") {
		t.Fatalf("got %v", err)
	}
	if logins, failures, _ := plain.Counts(); logins+failures != 0 {
		t.Fatal("credentials were sent without TLS")
	}
}

func TestUntrustedCertificate(t *testing.T) {
	f := start(t, &pop3test.Server{})
	f.opts.TLSConfig = &tls.Config{ServerName: "127.0.0.1"} // system roots only
	_, err := f.source("secret").List(context.Background())
	var fatal *migrate.Fatal
	if !errors.As(err, &fatal) || !migrate.CertError(err) {
		t.Fatalf("got %v", err)
	}
}

func TestStalledServer(t *testing.T) {
	srv := &pop3test.Server{Messages: []pop3test.Message{{UID: "a", Data: []byte("Subject: a\r\n\r\nx\r\n")}}}
	stop := make(chan struct{})
	srv.Hook = func(conn net.Conn, session int, cmd string) bool {
		if cmd == "RETR 1" {
			fmt.Fprint(conn, "+OK\r\nSubject: a\r\n")
			<-stop // then nothing more, and the connection stays open
			return true
		}
		return false
	}
	f := start(t, srv)
	t.Cleanup(func() { close(stop) }) // before the server's Close, which waits for the hook
	f.opts.Timeout = 300 * time.Millisecond
	s := f.source("secret")
	entries, _ := s.List(context.Background())
	begin := time.Now()
	err := s.Retrieve(context.Background(), entries, func(in *migrate.Incoming) error {
		_, err := io.ReadAll(in.R)
		return err
	})
	// The server never closes: only the idle timeout can end the wait.
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stall gave %v after %v", err, time.Since(begin))
	}
}

// TestTopHeaders reads every header pipelined, and with a server that does
// not pipeline, one at a time; a refused TOP is reported for its message.
func TestTopHeaders(t *testing.T) {
	msgs := []pop3test.Message{
		{UID: "a", Data: []byte("Subject: one\r\nX-Spam: Yes\r\n\r\nbody\r\n.hidden\r\n")},
		{UID: "b", Data: []byte(".Dot: header\r\n\r\nbody\r\n")},
		{UID: "c", Data: []byte("Subject: no body")},
	}
	for _, noCAPA := range []bool{false, true} {
		f := start(t, &pop3test.Server{Messages: msgs, NoCAPA: noCAPA})
		c, err := pop3.Dial(context.Background(), f.addr, f.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(f.srv.User, f.srv.Pass); err != nil {
			t.Fatal(err)
		}
		var got []string
		err = c.TopHeaders([]int{1, 2, 9, 3}, func(i int, h []byte, err error) error {
			if err != nil {
				got = append(got, fmt.Sprintf("%d: error", i))
			} else {
				got = append(got, fmt.Sprintf("%d: %q", i, h))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`0: "Subject: one\r\nX-Spam: Yes\r\n\r\n"`, `1: ".Dot: header\r\n\r\n"`, "2: error", `3: "Subject: no body\r\n"`}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("noCAPA=%v:\ngot  %q\nwant %q", noCAPA, got, want)
		}
		// The session is still in step.
		r, err := c.Retr(1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		if string(b) != string(msgs[0].Data) {
			t.Errorf("RETR after TOP: %q", b)
		}
		c.Quit()
		// Which path was taken, as the server saw it: TOPs sent ahead of
		// their replies, or one at a time when PIPELINING is not offered.
		if ahead := f.srv.Aheads(); noCAPA && ahead != 0 || !noCAPA && ahead < 3 {
			t.Errorf("noCAPA=%v: the server read %d command(s) sent ahead", noCAPA, ahead)
		}
	}
}

// TestAuthBearer signs in with a token over XOAUTH2 and OAUTHBEARER; a
// refused token is reported as a refused login after the error report is
// acknowledged.
func TestAuthBearer(t *testing.T) {
	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		var acked bool
		f := start(t, &pop3test.Server{Hook: func(conn net.Conn, _ int, line string) bool {
			switch {
			case strings.HasPrefix(line, "AUTH "):
				_, b64, _ := strings.Cut(line[5:], " ")
				raw, _ := base64.StdEncoding.DecodeString(b64)
				if strings.Contains(string(raw), "auth=Bearer good-token\x01") {
					fmt.Fprint(conn, "+OK signed in\r\n")
				} else {
					fmt.Fprint(conn, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")
				}
				return true
			case line == "":
				acked = true
				fmt.Fprint(conn, "-ERR [AUTH] token refused\r\n")
				return true
			}
			return false
		}})
		for _, tc := range []struct {
			token string
			ok    bool
		}{{"good-token", true}, {"expired", false}} {
			c, err := pop3.Dial(context.Background(), f.addr, f.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = c.AuthBearer(mech, "jean", tc.token, "127.0.0.1", 995)
			if tc.ok != (err == nil) || !tc.ok && (!errors.Is(err, pop3.ErrAuth) || !acked) {
				t.Fatalf("%s %s: %v (error report acknowledged: %v)", mech, tc.token, err, acked)
			}
			c.Close()
		}
	}
}

// TestPipelinedRetr: with PIPELINING the RETRs go out ahead of the replies
// (the server reads commands with more already waiting), and every message
// arrives whole and in order; without it, one command at a time.
func TestPipelinedRetr(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		var msgs []pop3test.Message
		for i := range 60 {
			body := strings.Repeat(fmt.Sprintf("line %d\r\n.dot line\r\n", i), 50*(i%7+1))
			msgs = append(msgs, pop3test.Message{UID: fmt.Sprintf("u%d", i), Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s", i, body))})
		}
		srv := &pop3test.Server{NoPipelining: !pipelining, Messages: msgs}
		f := start(t, srv)
		_, bodies, errs := collect(t, f.source("secret"))
		if len(bodies) != len(msgs) || len(errs) != 0 {
			t.Fatalf("pipelining %v: %d bodies, errors %v", pipelining, len(bodies), errs)
		}
		for i, m := range msgs {
			if string(bodies[i]) != string(m.Data) {
				t.Fatalf("pipelining %v: message %d differs", pipelining, i)
			}
		}
		if ahead := srv.Aheads(); pipelining && ahead < 30 || !pipelining && ahead != 0 {
			t.Fatalf("pipelining %v: %d commands read with the next one already sent", pipelining, ahead)
		}
	}
}

// TestUTF8 (RFC 6856): a server that offers UTF8 and downgrades messages with
// 8-bit headers for clients that do not ask (Courier) gets UTF8 before the
// login, and the messages arrive as stored; the stand-in is what a client
// that does not ask gets.
func TestUTF8(t *testing.T) {
	orig := []byte("From: Zo\xc3\xab <zoe@example.org>\r\nSubject: R\xc3\xa9union\r\n\r\nbody\r\n")
	srv := &pop3test.Server{UTF8: true, Messages: []pop3test.Message{{UID: "a", Data: orig}}}
	f := start(t, srv)
	_, got, errs := collect(t, f.source("secret"))
	if len(errs) > 0 || !bytes.Equal(got[0], orig) {
		t.Fatalf("got %q (%v), want the original", got[0], errs)
	}
	// Without UTF8 the same server serves the stand-in: the test above
	// would see it if the client did not ask.
	c, err := pop3.Dial(context.Background(), f.addr, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth("jean", "secret"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if !bytes.Equal(b, pop3test.StandIn(orig)) {
		t.Fatalf("without UTF8: %q", b)
	}
}

// TestEchoedPasswordRedacted: a server that quotes the refused password in
// its reply does not get it printed: the error says *** instead, however
// it is unwrapped.
func TestEchoedPasswordRedacted(t *testing.T) {
	srv := &pop3test.Server{Hook: func(conn net.Conn, _ int, cmd string) bool {
		if pass, ok := strings.CutPrefix(cmd, "PASS "); ok {
			fmt.Fprintf(conn, "-ERR [AUTH] wrong credentials: x %s (raw %s)\r\n", pass, base64.StdEncoding.EncodeToString([]byte(pass)))
			return true
		}
		return false
	}}
	f := start(t, srv)
	_, err := f.source("Zebra-Pass-9").List(context.Background())
	if err == nil {
		t.Fatal("login accepted")
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s := e.Error(); strings.Contains(s, "Zebra-Pass-9") || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("Zebra-Pass-9"))) {
			t.Fatalf("the password shows: %q", s)
		}
	}
	if !strings.Contains(err.Error(), "wrong credentials: x ***") {
		t.Errorf("the server's words are lost: %v", err)
	}
}

// TestListingsDisagree: LIST and UIDL name different messages, and a LIST
// line gives no size: every message either listing knows of is read, and
// the notes say what was odd.
func TestListingsDisagree(t *testing.T) {
	srv := &pop3test.Server{}
	for i := 1; i <= 9; i++ {
		srv.Messages = append(srv.Messages, pop3test.Message{UID: fmt.Sprintf("u%d", i), Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))})
	}
	srv.Hook = func(conn net.Conn, _ int, cmd string) bool {
		switch cmd {
		case "LIST":
			fmt.Fprint(conn, "+OK\r\n1 20\r\n2 -5\r\n4 20\r\n7 20\r\n.\r\n")
		case "UIDL":
			fmt.Fprint(conn, "+OK\r\n2 u2\r\n3 u3\r\n4 u4\r\n9 u9\r\n.\r\n")
		default:
			return false
		}
		return true
	}
	f := start(t, srv)
	s := f.source("secret")
	entries, bodies, errs := collect(t, s)
	var nums []int
	for i, e := range entries {
		nums = append(nums, e.Num)
		if want := fmt.Sprintf("Subject: %d\r\n", e.Num); !strings.HasPrefix(string(bodies[i]), want) {
			t.Errorf("message %d: %q", e.Num, bodies[i])
		}
	}
	if fmt.Sprint(nums) != "[1 2 3 4 7 9]" || len(errs) != 0 {
		t.Fatalf("read %v (%v), want [1 2 3 4 7 9]", nums, errs)
	}
	notes := strings.Join(s.Notes(), "\n")
	for _, want := range []string{"LIST and UIDL disagree", "no usable size", "no unique id for 2"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// TestEndlessListing: a LIST that never ends is cut at the bound STAT gives,
// with an error, not grown until memory runs out.
func TestEndlessListing(t *testing.T) {
	srv := &pop3test.Server{Messages: []pop3test.Message{{UID: "a", Data: []byte("Subject: a\r\n\r\nx\r\n")}}}
	srv.Hook = func(conn net.Conn, _ int, cmd string) bool {
		if cmd != "LIST" {
			return false
		}
		fmt.Fprint(conn, "+OK\r\n")
		line := []byte("1 100\r\n")
		for i := 0; i < 5000; i++ {
			if _, err := conn.Write(line); err != nil {
				return true
			}
		}
		return true // and never the final "."
	}
	f := start(t, srv)
	_, err := f.source("secret").List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not end it") {
		t.Fatalf("err %v", err)
	}
}
