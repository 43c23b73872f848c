package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/internal/mailcheck"
	"github.com/mailmove/mailmove/migrate"
)

var dovecot *dovecottest.Server

// TestMain runs the test binary as mailmove itself when asked to, so the
// crash tests can SIGKILL a real process; otherwise it starts one Dovecot
// for all the tests of this package.
func TestMain(m *testing.M) {
	if os.Getenv("MAILMOVE_AS_MAIN") == "1" {
		if path := os.Getenv("MAILMOVE_MEMPROFILE"); path != "" { // for `make bench` investigations
			go func() { // the heap as of the last collection, every 2 s
				for range time.Tick(2 * time.Second) {
					f, _ := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}()
			os.Exit(run(os.Args[1:]))
		}
		if path := os.Getenv("MAILMOVE_CPUPROFILE"); path != "" {
			f, _ := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
			pprof.StartCPUProfile(f)
			code := run(os.Args[1:])
			pprof.StopCPUProfile()
			os.Exit(code)
		}
		os.Exit(run(os.Args[1:]))
	}
	// Never read the developer's own configuration or state.
	home, err := os.MkdirTemp("", "mailmove-xdg-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	os.Setenv("XDG_STATE_HOME", filepath.Join(home, "state"))
	code := dovecottest.Main(m, &dovecot)
	stopOthers()
	os.RemoveAll(home)
	os.Exit(code)
}

// pair is a POP3 source account and an IMAP destination account.
type pair struct {
	srv      *dovecottest.Server
	src, dst dovecottest.User
	state    string
	msgs     [][]byte
	from     string // the --from argument; the POP3 account when empty
}

func newPair(t *testing.T, msgs [][]byte) *pair {
	t.Helper()
	srv := dovecottest.Need(t, dovecot)
	src, err := srv.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	dst, err := srv.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Seed(src, msgs); err != nil {
		t.Fatal(err)
	}
	return &pair{srv: srv, src: src, dst: dst, state: filepath.Join(t.TempDir(), "state.db"), msgs: msgs}
}

func (p *pair) args(extra ...string) []string {
	from := p.from
	if from == "" {
		from = "pop3s://" + p.src.Name + "@" + p.srv.POP3S
	}
	return append([]string{
		"--from", from,
		"--to", "imaps://" + p.dst.Name + "@" + p.srv.IMAPS,
		"--ca-file", p.srv.CAFile, "--state", p.state,
		"--quiet",
	}, extra...)
}

func (p *pair) env() []string {
	return []string{"MAILMOVE_FROM_PASSWORD=" + p.src.Password, "MAILMOVE_TO_PASSWORD=" + p.dst.Password}
}

// runMain runs mailmove in-process.
func (p *pair) runMain(t *testing.T, args ...string) (migrate.Summary, string, error) {
	t.Helper()
	t.Setenv("MAILMOVE_FROM_PASSWORD", p.src.Password)
	t.Setenv("MAILMOVE_TO_PASSWORD", p.dst.Password)
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out}
	if err := m.ParseFlags(args); err != nil {
		t.Fatalf("flags: %v", err)
	}
	sum, err := m.Run(context.Background())
	return sum, out.String(), err
}

// stored is one message read back from the destination.
type stored struct {
	body  []byte
	flags []imapv2.Flag
	date  time.Time
}

// login opens an IMAP session of user on the test Dovecot.
func (p *pair) login(t *testing.T, user dovecottest.User) *imapclient.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.srv.CAPEM)
	c, err := imapclient.DialTLS(p.srv.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user.Name, user.Password).Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// count is how many messages folder holds now (STATUS), for tests that
// wait for a run to be under way.
func (p *pair) count(t *testing.T, user dovecottest.User, folder string) int {
	t.Helper()
	c := p.login(t, user)
	defer c.Close()
	st, err := c.Status(folder, &imapv2.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil {
		return 0 // not there yet
	}
	return int(*st.NumMessages)
}

// waitUntil polls cond until it holds, failing the test if the process
// exits first (the event it waits for would then prove nothing) or after
// two minutes.
func waitUntil(t *testing.T, exited <-chan error, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		select {
		case err := <-exited:
			t.Fatalf("the run ended (%v) before %s: the test would prove nothing", err, what)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after two minutes", what)
		}
	}
}

func (p *pair) fetchAll(t *testing.T, user dovecottest.User, folder string) []stored {
	t.Helper()
	c := p.login(t, user)
	defer c.Close()
	data, err := c.Select(folder, &imapv2.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.NumMessages == 0 {
		return nil
	}
	sec := &imapv2.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imapv2.SeqSet{imapv2.SeqRange{Start: 1, Stop: 0}}, &imapv2.FetchOptions{
		Flags: true, InternalDate: true, BodySection: []*imapv2.FetchItemBodySection{sec},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]stored, len(bufs))
	for i, b := range bufs {
		out[i] = stored{body: b.FindBodySection(sec), flags: b.Flags, date: b.InternalDate}
	}
	return out
}

// appendRaw APPENDs messages, as they are, to a folder of the destination
// account, creating it.
func (p *pair) appendRaw(t *testing.T, folder string, msgs [][]byte) {
	t.Helper()
	c := p.login(t, p.dst)
	defer c.Close()
	c.Create(folder, nil).Wait()
	for _, m := range msgs {
		cmd := c.Append(folder, int64(len(m)), nil)
		cmd.Write(m)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// crlf is the source as IMAP stores it, by the tests' own reference.
func crlf(b []byte) []byte { return mailcheck.CRLF(b) }

// checkExactlyOnce verifies the destination holds every distinct source
// message once, unaltered apart from line endings or with only its 8-bit
// header bytes encoded (mailcheck.Key), and nothing else.
func checkExactlyOnce(t *testing.T, msgs [][]byte, got []stored) {
	t.Helper()
	bodies := make([][]byte, len(got))
	for i, s := range got {
		bodies[i] = s.body
	}
	if missing, doubled, foreign := mailcheck.Tally(msgs, bodies); missing+doubled+foreign > 0 {
		t.Fatalf("destination: %d missing, %d doubled, %d not from the source (want %d distinct, have %d stored)",
			missing, doubled, foreign, distinct(msgs), len(got))
	}
}

func distinct(msgs [][]byte) int {
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[mailcheck.Key(m)] = true
	}
	return len(seen)
}
