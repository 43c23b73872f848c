package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/migrate"
)

var dovecot *dovecottest.Server

func TestMain(m *testing.M) { os.Exit(dovecottest.Main(m, &dovecot)) }

func testMessage(i, size int) []byte {
	body := strings.Repeat(fmt.Sprintf("line %d of message %d, padding the body out\r\n", i, i), size/40+1)
	return fmt.Appendf(nil, "Message-ID: <pipe-%d@test>\r\nSubject: message %d\r\nFrom: a@example.org\r\n\r\n%s", i, i, body)
}

func dovecotConfig(t testing.TB, u dovecottest.User) Config {
	pem, err := os.ReadFile(dovecot.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return Config{Addr: dovecot.IMAPS, User: u.Name, Password: func() (string, error) { return u.Password, nil },
		TLS: TLSImplicit, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, Timeout: 30 * time.Second}
}

// uidOrder lists a folder's Message-IDs in UID order, with their flags and
// INTERNALDATE.
func uidOrder(t *testing.T, cfg Config, folder string) (ids []string, flags [][]imapv2.Flag, dates []time.Time) {
	c, err := imapclient.DialTLS(cfg.Addr, &imapclient.Options{TLSConfig: cfg.TLSConfig})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pass, _ := cfg.Password()
	if err := c.Login(cfg.User, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sect := &imapv2.FetchItemBodySection{Specifier: imapv2.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := c.Fetch(imapv2.SeqSet{imapv2.SeqRange{Start: 1, Stop: 0}}, &imapv2.FetchOptions{
		UID: true, Flags: true, InternalDate: true, BodySection: []*imapv2.FetchItemBodySection{sect},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(msgs, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.UID) - int(b.UID) })
	for _, m := range msgs {
		h := strings.TrimSpace(string(m.FindBodySection(sect)))
		ids = append(ids, strings.TrimSpace(strings.TrimPrefix(h, "Message-ID:")))
		flags = append(flags, m.Flags)
		dates = append(dates, m.InternalDate)
	}
	return ids, flags, dates
}

// TestPipeOrder: batches sent over four connections, of uneven sizes so
// that later batches finish uploading first, land in the order they were
// sent, with the UIDs APPENDUID reported, and their flags and dates.
func TestPipeOrder(t *testing.T) {
	dovecottest.Need(t, dovecot)
	u, err := dovecot.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	cfg := dovecotConfig(t, u)
	p := New(cfg).Pipe(4)
	rng := rand.New(rand.NewPCG(7, 7))
	date := time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)
	var mu sync.Mutex
	got := map[int]migrate.AppendResult{}
	n := 0
	for batch := 0; batch < 24; batch++ {
		size := 1 + rng.IntN(30)
		var msgs []migrate.Outgoing
		first := n
		for range size {
			bytes := 500
			if batch%4 == 0 {
				bytes = 200 << 10 // the first of each four is slow to upload
			}
			msgs = append(msgs, migrate.Outgoing{Body: migrate.BodyFromBytes(testMessage(n, bytes)),
				Flags: []string{`\Seen`, "$Label" + strconv.Itoa(n%3)}, Date: date.Add(time.Duration(n) * time.Minute)})
			n++
		}
		p.Send(context.Background(), "INBOX", msgs, func(res []migrate.AppendResult) {
			mu.Lock()
			defer mu.Unlock()
			for i, r := range res {
				got[first+i] = r
			}
		})
	}
	p.Close()
	ids, flags, dates := uidOrder(t, cfg, "INBOX")
	if len(ids) != n || len(got) != n {
		t.Fatalf("%d messages in INBOX, %d results, want %d", len(ids), len(got), n)
	}
	for i := range n {
		if want := fmt.Sprintf("<pipe-%d@test>", i); ids[i] != want {
			t.Fatalf("UID order: position %d holds %s, want %s", i, ids[i], want)
		}
		if r := got[i]; r.Err != nil || r.UID != uint32(i+1) || r.UIDValidity == 0 {
			t.Fatalf("message %d: %+v, want UID %d", i, r, i+1)
		}
		if !slices.Contains(flags[i], imapv2.FlagSeen) || !slices.Contains(flags[i], imapv2.Flag("$Label"+strconv.Itoa(i%3))) {
			t.Fatalf("message %d: flags %v", i, flags[i])
		}
		if want := date.Add(time.Duration(i) * time.Minute); !dates[i].Equal(want) {
			t.Fatalf("message %d: INTERNALDATE %v, want %v", i, dates[i], want)
		}
	}
}

// TestPipeFolders: a non-ASCII folder name goes out in modified UTF-7; a
// folder that does not exist is a refusal the caller may retry (TRYCREATE),
// and the batches after it still land; a wrong password is an AuthError.
func TestPipeFolders(t *testing.T) {
	dovecottest.Need(t, dovecot)
	u, err := dovecot.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	cfg := dovecotConfig(t, u)
	d := New(cfg)
	if _, err := d.Mailbox(t.Context(), "Réunions & Co", true); err != nil {
		t.Fatal(err)
	}
	d.Close()
	p := d.Pipe(2)
	var mu sync.Mutex
	results := map[string][]migrate.AppendResult{}
	for i, folder := range []string{"Réunions & Co", "Missing", "Réunions & Co"} {
		p.Send(context.Background(), folder, []migrate.Outgoing{{Body: migrate.BodyFromBytes(testMessage(i, 100))}}, func(res []migrate.AppendResult) {
			mu.Lock()
			results[folder+strconv.Itoa(i)] = res
			mu.Unlock()
		})
	}
	p.Close()
	if r := results["Missing1"][0]; r.Err == nil || !strings.Contains(r.Err.Error(), "TRYCREATE") {
		t.Fatalf("append to a missing folder: %v", r.Err)
	} else {
		var perm *migrate.Permanent
		if errors.As(r.Err, &perm) {
			t.Fatalf("TRYCREATE taken as a refusal of the message: %v", r.Err)
		}
	}
	ids, _, _ := uidOrder(t, cfg, "Réunions & Co")
	if !slices.Equal(ids, []string{"<pipe-0@test>", "<pipe-2@test>"}) {
		t.Fatalf("Réunions & Co holds %q", ids)
	}
	if _, err := os.Stat(u.Home + "/Maildir/.R&AOk-unions &- Co"); err != nil {
		t.Fatalf("folder name on disk: %v", err)
	}

	bad := cfg
	bad.Password = func() (string, error) { return "wrong", nil }
	p = New(bad).Pipe(1)
	var res []migrate.AppendResult
	p.Send(context.Background(), "INBOX", []migrate.Outgoing{{Body: migrate.BodyFromBytes(testMessage(9, 100))}}, func(r []migrate.AppendResult) { res = r })
	p.Close()
	var auth *migrate.AuthError
	if !errors.As(res[0].Err, &auth) {
		t.Fatalf("wrong password: %v", res[0].Err)
	}
}

// script is an IMAP server on 127.0.0.1 that answers APPEND as answer says:
// with the messages of the command, it returns the tagged reply's text
// ("OK [APPENDUID 1 5:7] done", "NO [TOOBIG] too big"), or "" to close the
// connection. caps are its capabilities.
type script struct {
	caps   string
	answer func(msgs [][]byte) string
	logins int // logins accepted; those after are refused; 0: all accepted
	mu     sync.Mutex
	cmds   []string // APPEND command lines, literals left out
	tried  int      // logins attempted
}

func (s *script) start(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return ln.Addr().String()
}

func (s *script) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "* OK ready\r\n")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		tag, rest, _ := strings.Cut(line, " ")
		verb, _, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(verb) {
		case "CAPABILITY":
			fmt.Fprintf(conn, "* CAPABILITY IMAP4rev1 %s\r\n%s OK done\r\n", s.caps, tag)
		case "LOGIN":
			s.mu.Lock()
			s.tried++
			refuse := s.logins > 0 && s.tried > s.logins
			s.mu.Unlock()
			if refuse {
				fmt.Fprintf(conn, "%s NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded\r\n", tag)
				continue
			}
			fmt.Fprintf(conn, "%s OK logged in\r\n", tag)
		case "LOGOUT":
			fmt.Fprintf(conn, "* BYE bye\r\n%s OK done\r\n", tag)
			return
		case "APPEND":
			var msgs [][]byte
			cmd := ""
			for {
				n, ok := literalSize(line)
				cmd += line
				if !ok {
					break
				}
				if !strings.HasSuffix(line, "+}") {
					fmt.Fprintf(conn, "+ go ahead\r\n")
				}
				msg := make([]byte, n)
				if _, err := io.ReadFull(br, msg); err != nil {
					return
				}
				msgs = append(msgs, msg)
				if line, err = br.ReadString('\n'); err != nil {
					return
				}
				line = strings.TrimRight(line, "\r\n")
			}
			s.mu.Lock()
			s.cmds = append(s.cmds, cmd)
			s.mu.Unlock()
			reply := s.answer(msgs)
			if reply == "" {
				return
			}
			fmt.Fprintf(conn, "%s %s\r\n", tag, reply)
		default:
			fmt.Fprintf(conn, "%s BAD what\r\n", tag)
		}
	}
}

func sendOne(p migrate.Pipe, msgs []migrate.Outgoing) []migrate.AppendResult {
	var res []migrate.AppendResult
	p.Send(context.Background(), "INBOX", msgs, func(r []migrate.AppendResult) { res = r })
	p.Close()
	return res
}

func plainConfig(addr string) Config {
	return Config{Addr: addr, User: "u", Password: func() (string, error) { return "p", nil }, TLS: TLSNone, Timeout: 5 * time.Second}
}

func threeMessages() []migrate.Outgoing {
	var msgs []migrate.Outgoing
	for i := range 3 {
		msgs = append(msgs, migrate.Outgoing{Body: migrate.BodyFromBytes(testMessage(i, 50))})
	}
	return msgs
}

// TestPipeScripted: the replies a real server is unlikely to give on cue.
func TestPipeScripted(t *testing.T) {
	t.Run("MULTIAPPEND refused as a whole", func(t *testing.T) {
		s := &script{caps: "LITERAL+ MULTIAPPEND UIDPLUS", answer: func([][]byte) string { return "NO [TOOBIG] one of them is too big" }}
		res := sendOne(New(plainConfig(s.start(t))).Pipe(1), threeMessages())
		for i, r := range res {
			var perm *migrate.Permanent
			if !errors.As(r.Err, &perm) {
				t.Fatalf("message %d: %v, want a refusal", i, r.Err)
			}
		}
		if len(s.cmds) != 1 || strings.Count(s.cmds[0], "{") != 3 {
			t.Fatalf("commands %q: want one MULTIAPPEND of 3", s.cmds)
		}
	})
	t.Run("quota", func(t *testing.T) {
		s := &script{caps: "LITERAL+ MULTIAPPEND", answer: func([][]byte) string { return "NO [OVERQUOTA] full" }}
		res := sendOne(New(plainConfig(s.start(t))).Pipe(1), threeMessages())
		if !errors.Is(res[0].Err, migrate.ErrFull) {
			t.Fatalf("%v, want ErrFull", res[0].Err)
		}
	})
	t.Run("connection lost after the upload", func(t *testing.T) {
		s := &script{caps: "LITERAL+ MULTIAPPEND", answer: func([][]byte) string { return "" }}
		res := sendOne(New(plainConfig(s.start(t))).Pipe(1), threeMessages())
		for i, r := range res {
			var perm *migrate.Permanent
			if r.Err == nil || errors.As(r.Err, &perm) {
				t.Fatalf("message %d: %v, want an error that says it may be stored", i, r.Err)
			}
		}
	})
	t.Run("no LITERAL+, no MULTIAPPEND: one APPEND each, waiting for +", func(t *testing.T) {
		n := 0
		s := &script{caps: "UIDPLUS", answer: func(msgs [][]byte) string {
			n++
			if n == 2 {
				return "NO refused this one"
			}
			return fmt.Sprintf("OK [APPENDUID 9 %d] done", n)
		}}
		res := sendOne(New(plainConfig(s.start(t))).Pipe(1), threeMessages())
		if res[0].Err != nil || res[0].UID != 1 || res[2].Err != nil || res[2].UID != 3 || res[0].UIDValidity != 9 {
			t.Fatalf("results %+v", res)
		}
		var perm *migrate.Permanent
		if !errors.As(res[1].Err, &perm) {
			t.Fatalf("second message: %v, want a refusal", res[1].Err)
		}
		if len(s.cmds) != 3 || strings.Contains(strings.Join(s.cmds, ""), "+}") {
			t.Fatalf("commands %q", s.cmds)
		}
	})
	t.Run("LITERAL+ without MULTIAPPEND: pipelined", func(t *testing.T) {
		n := 0
		s := &script{caps: "LITERAL+ UIDPLUS", answer: func([][]byte) string { n++; return fmt.Sprintf("OK [APPENDUID 9 %d] done", n+10) }}
		res := sendOne(New(plainConfig(s.start(t))).Pipe(1), threeMessages())
		for i, r := range res {
			if r.Err != nil || r.UID != uint32(i+11) {
				t.Fatalf("message %d: %+v", i, r)
			}
		}
	})
	t.Run("server falls silent", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		s := &script{caps: "LITERAL+ MULTIAPPEND", answer: func([][]byte) string { <-release; return "OK late" }}
		cfg := plainConfig(s.start(t))
		cfg.Timeout = 300 * time.Millisecond
		start := time.Now()
		res := sendOne(New(cfg).Pipe(1), threeMessages())
		var perm *migrate.Permanent
		if res[0].Err == nil || errors.As(res[0].Err, &perm) || time.Since(start) > 5*time.Second {
			t.Fatalf("after %v: %v, want a timeout that says it may be stored", time.Since(start), res[0].Err)
		}
	})
	t.Run("connections over the server's limit", func(t *testing.T) {
		s := &script{caps: "LITERAL+ MULTIAPPEND", logins: 1, answer: func([][]byte) string { return "OK done" }}
		p := New(plainConfig(s.start(t))).Pipe(3)
		var mu sync.Mutex
		ok, refused := 0, 0
		for range 8 {
			p.Send(context.Background(), "INBOX", threeMessages(), func(res []migrate.AppendResult) {
				mu.Lock()
				defer mu.Unlock()
				var auth *migrate.AuthError
				switch {
				case res[0].Err == nil:
					ok++
				case errors.As(res[0].Err, &auth):
					refused++
				default:
					t.Errorf("unexpected %v", res[0].Err)
				}
			})
		}
		p.Close()
		if ok+refused != 8 || refused > 2 || s.tried != 3 {
			t.Fatalf("%d batches stored, %d refused, %d logins; want at most 2 refused (one per refused connection), 3 logins", ok, refused, s.tried)
		}
	})
	t.Run("APPENDUID that does not add up", func(t *testing.T) {
		s := &script{caps: "LITERAL+ MULTIAPPEND UIDPLUS", answer: func([][]byte) string { return "OK [APPENDUID 3 4:5] two for three" }}
		res := sendOne(New(plainConfig(s.start(t))).Pipe(1), threeMessages())
		for i, r := range res {
			if r.Err != nil || r.UID != 0 || r.UIDValidity != 3 {
				t.Fatalf("message %d: %+v, want stored with no UID", i, r)
			}
		}
	})
	t.Run("content arrives intact", func(t *testing.T) {
		var got [][]byte
		s := &script{caps: "LITERAL+ MULTIAPPEND", answer: func(msgs [][]byte) string { got = msgs; return "OK done" }}
		msgs := threeMessages()
		msgs[1].Body = migrate.BodyFromBytes([]byte("Subject: {5}\r\n\r\nA line ending in a literal marker {12+}\r\n"))
		sendOne(New(plainConfig(s.start(t))).Pipe(1), msgs)
		if len(got) != 3 || string(got[1]) != "Subject: {5}\r\n\r\nA line ending in a literal marker {12+}\r\n" {
			t.Fatalf("server got %q", got)
		}
	})
}

func TestEncodeMailbox(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX": "INBOX", "Réunions": "R&AOk-unions", "A&B": "A&-B", "日本語": "&ZeVnLIqe-",
		"Sent/Éte": "Sent/&AMk-te", "tab\there": "tab&AAk-here", "~peter/mail/&U,BTFw-": "~peter/mail/&-U,BTFw-",
	} {
		if got := encodeMailbox(in); got != want {
			t.Errorf("encodeMailbox(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAppendUID(t *testing.T) {
	for in, want := range map[string][]uint32{
		"OK [APPENDUID 38505 3955] APPEND completed": {3955},
		"OK [APPENDUID 1 5:7,9] done":                {5, 6, 7, 9},
		"OK done":                                    nil,
		"OK [APPENDUID 1 7:5] backwards":             nil,
		"OK [APPENDUID x 1] bad":                     nil,
	} {
		if _, got := appendUID(in); !slices.Equal(got, want) {
			t.Errorf("appendUID(%q) = %v, want %v", in, got, want)
		}
	}
}
