// Package maddytest starts a real maddy (github.com/foxcpp/maddy, built by
// internal/mailserver/build-goservers.sh) on 127.0.0.1 high ports as an IMAP
// destination for integration tests, and creates throwaway users in it with
// maddy's own CLI.
//
// maddy runs with its default storage, storage.imapsql on SQLite (the cgo
// driver, as maddy's own build uses), and auth.pass_table on SQLite, both in
// a temporary state directory. It serves IMAP over implicit TLS and
// plaintext IMAP that offers STARTTLS (maddy refuses LOGIN before it:
// LOGINDISABLED), with a certificate from internal/testcert. It has no POP3,
// and no SMTP is configured: maddy does not insist on one, and an SMTP
// endpoint would only add DNS checks. Nothing it is configured with makes
// it resolve names or connect anywhere: at start and in a session it opens
// no socket but its listeners and its own Unix sockets (checked with strace
// -f -e trace=connect).
package maddytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mailmove/mailmove/internal/childserver"
	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/testcert"
)

var _ mailserver.Server = (*Server)(nil)

// Server is a running maddy.
type Server struct {
	dir     string
	bin     string
	conf    string
	version string // the build stamp, e.g. "maddy v0.8.1 go1.26.8 cgo"
	caPEM   []byte
	caFile  string
	addrs   mailserver.Addrs
	proc    *childserver.Proc

	mu     sync.Mutex
	nUsers int
}

// startTimeout is generous for a loaded 2-core CI machine; maddy is
// normally listening within 100 ms.
const startTimeout = 20 * time.Second

// Start starts maddy in a temporary directory. Call Stop when done. It fails
// with an error that says what to do when the binary has not been built.
func Start() (*Server, error) {
	bin, err := childserver.Binary("maddy")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mailmove-maddy-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, conf: filepath.Join(dir, "maddy.conf"), version: childserver.Stamp(bin)}
	if err := s.setUp(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A port taken by someone else between FreePorts and maddy's bind is
	// not maddy's fault: try again on other ports.
	for try := 1; ; try++ {
		err = s.launch()
		if err == nil {
			return s, nil
		}
		if !childserver.AddrInUse(err) || try == 3 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (s *Server) setUp() error {
	for _, d := range []string{"state", "run"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
			return err
		}
	}
	p, err := testcert.New()
	if err != nil {
		return err
	}
	s.caPEM = p.CAPEM
	s.caFile = filepath.Join(s.dir, "ca.pem")
	for name, b := range map[string][]byte{"ca.pem": p.CAPEM, "cert.pem": p.CertPEM, "key.pem": p.KeyPEM} {
		if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// launch writes the configuration for fresh ports and starts maddy on it.
func (s *Server) launch() error {
	ports, err := childserver.FreePorts(2)
	if err != nil {
		return err
	}
	s.addrs = mailserver.Addrs{IMAPS: childserver.Addr(ports[0]), IMAP: childserver.Addr(ports[1])}
	conf := fmt.Sprintf(confTemplate, s.dir, s.addrs.IMAPS, s.addrs.IMAP)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		return err
	}
	proc, err := childserver.Start("maddy", filepath.Join(s.dir, "maddy.log"), s.command("run"))
	if err != nil {
		return err
	}
	// maddy logs "listening on" after each bind: proof that the port is
	// maddy's and not another process's that took it since FreePorts.
	err = proc.WaitReady(startTimeout,
		proc.Logged("imap: listening on tls://"+s.addrs.IMAPS), proc.Logged("imap: listening on tcp://"+s.addrs.IMAP),
		childserver.Listening(s.addrs.IMAPS), childserver.Listening(s.addrs.IMAP))
	if err != nil {
		proc.Stop()
		return fmt.Errorf("maddy (%s, %s): %w", s.bin, s.version, err)
	}
	s.proc = proc
	return nil
}

func (s *Server) command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.bin, append([]string{"--config", s.conf}, args...)...)
	cmd.Dir = s.dir
	return cmd
}

// Name is "maddy".
func (s *Server) Name() string { return "maddy" }

// Version is what built the binary, e.g. "maddy v0.8.1 go1.26.8 cgo".
func (s *Server) Version() string { return s.version }

// Addrs are IMAPS and IMAP (STARTTLS); maddy has no POP3.
func (s *Server) Addrs() mailserver.Addrs { return s.addrs }

// CAFile is the PEM of the CA that signed maddy's certificate.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM is the content of CAFile.
func (s *Server) CAPEM() []byte { return s.caPEM }

// Dir is maddy's temporary directory (config, state, log).
func (s *Server) Dir() string { return s.dir }

// AddUser creates a user with `maddy creds create` (the login) and `maddy
// imap-acct create` (the mailbox, with Sent, Trash, Junk, Drafts and
// Archive marked special-use), on the running server's databases. Home is
// "": maddy keeps all users' messages in one blob directory.
func (s *Server) AddUser() (mailserver.User, error) {
	s.mu.Lock()
	s.nUsers++
	n := s.nUsers
	s.mu.Unlock()
	u := mailserver.User{
		Name:     fmt.Sprintf("user%d@example.test", n),
		Password: fmt.Sprintf("pw-%d-%s", n, filepath.Base(s.dir)),
	}
	// bcrypt's lowest cost: every LOGIN checks the hash, and cost 10 (the
	// default) is 50 ms of CPU each time on this machine.
	if err := s.cli(u.Password+"\n", "creds", "create", "--bcrypt-cost", "4", u.Name); err != nil {
		return mailserver.User{}, err
	}
	if err := s.cli("", "imap-acct", "create", u.Name); err != nil {
		return mailserver.User{}, err
	}
	return u, nil
}

// cli runs a maddy subcommand on this server's configuration.
func (s *Server) cli(stdin string, args ...string) error {
	var err error
	var out []byte
	// The CLI opens the SQLite databases the server has open; a write that
	// meets the server's lock fails at once ("database is locked").
	for try := 0; try < 5; try++ {
		cmd := s.command(args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err = cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "database is locked") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("maddy %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Seed appends msgs to u's INBOX over IMAPS, one at a time (maddy fails
// parallel APPENDs with "database is locked"), INTERNALDATEs one second
// apart. maddy is a destination-only harness (it has no POP3): Seed is for
// tests that need messages already in the destination, and goes through
// maddy's IMAP APPEND, which stores the bytes as given.
func (s *Server) Seed(u mailserver.User, msgs [][]byte) error {
	return childserver.SeedIMAP(s.addrs.IMAPS, s.caPEM, u.Name, u.Password, "INBOX", msgs)
}

// Log returns maddy's log so far.
func (s *Server) Log() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Log()
}

// Stop kills maddy and removes its directory. Safe to call more than once.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.Stop()
	}
	os.RemoveAll(s.dir)
}

// confTemplate is a minimal maddy.conf: %[1]s the directory, %[2]s the
// IMAPS address, %[3]s the plaintext one. The module blocks keep the names
// of maddy's own maddy.conf (local_authdb, local_mailboxes), which are the
// CLI's defaults for --cfg-block. Relative dsn paths are in state_dir.
const confTemplate = `
state_dir %[1]s/state
runtime_dir %[1]s/run
hostname localhost
tls file %[1]s/cert.pem %[1]s/key.pem
log stderr

auth.pass_table local_authdb {
    table sql_table {
        driver sqlite3
        dsn credentials.db
        table_name passwords
    }
}

storage.imapsql local_mailboxes {
    driver sqlite3
    dsn imapsql.db
}

imap tls://%[2]s tcp://%[3]s {
    auth &local_authdb
    storage &local_mailboxes
}
`
