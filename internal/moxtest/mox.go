// Package moxtest starts a real mox (github.com/mjl-/mox, built by
// internal/mailserver/build-goservers.sh) on 127.0.0.1 high ports as an IMAP
// destination for integration tests, with several throwaway accounts.
//
// It runs `mox localserve -dir DIR` on a configuration that the harness
// writes into DIR itself. localserve writes its own configuration only when
// DIR does not exist (fixed ports 1143/1993, its own self-signed certificate,
// one account mox@localhost); given an existing DIR it loads DIR/mox.conf
// and DIR/domains.conf as they are. So ours has free ports, our
// internal/testcert certificate (tests verify it with the CA, ServerName
// 127.0.0.1) and no SMTP or HTTP listener. localserve rather than `mox
// serve`: it runs in one process, without serve's privilege switch and
// fork/exec, and its only changes to mox's behaviour are to SMTP delivery,
// which is not configured here. (Its start-up banner still names
// mox@localhost and ports +1000; neither exists here.)
//
// Accounts are added while mox runs, through its control socket, with mox's
// own CLI: `mox config account add` (which gives the account mox's default
// settings, the ones quickstart and the admin pages give: automatic junk
// flags by mailbox name, a junk filter) and `mox setaccountpassword`.
//
// Behaviour to know when testing against it (mox v0.0.17):
//   - The inbox is named "Inbox" (INBOX works too); NAMESPACE (("" "/")).
//   - Automatic junk flags: an APPEND to the inbox (or another "neutral"
//     mailbox) drops $Junk and $NotJunk; one to a mailbox matching
//     ^(junk|spam) gets $Junk; one to any other mailbox gets $NotJunk.
//   - Rate limits per client IP, all of them 127.0.0.1 here: 30 concurrent
//     IMAP connections, 300 new ones a minute, 10 failed logins a minute.
//
// No DNS: with no SMTP listener and CheckUpdates off, mox opens no socket
// but its listeners and control socket (checked with strace -f -e
// trace=connect).
package moxtest

import (
	"crypto/rand"
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

// Server is a running mox.
type Server struct {
	dir     string
	bin     string
	conf    string
	version string // the build stamp, e.g. "mox v0.0.17 go1.26.8"
	caPEM   []byte
	caFile  string
	addrs   mailserver.Addrs
	proc    *childserver.Proc

	mu     sync.Mutex
	nUsers int
}

// Domain is the mail domain of the accounts.
const Domain = "example.test"

// startTimeout is generous for a loaded 2-core CI machine; mox is normally
// ready within 200 ms.
const startTimeout = 20 * time.Second

// Start starts mox in a temporary directory. Call Stop when done. It fails
// with an error that says what to do when the binary has not been built.
func Start() (*Server, error) {
	bin, err := childserver.Binary("mox")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mailmove-mox-")
	if err != nil {
		return nil, err
	}
	// The control socket, DIR/data/ctl, must fit in a sockaddr_un.
	if n := len(filepath.Join(dir, "data", "ctl")); n > 100 {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mox: temporary directory %s is too long for mox's control socket (%d bytes, at most 100); set TMPDIR shorter", dir, n)
	}
	s := &Server{dir: dir, bin: bin, conf: filepath.Join(dir, "mox.conf"), version: childserver.Stamp(bin)}
	if err := s.setUp(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A port taken by someone else between FreePorts and mox's bind is not
	// mox's fault: try again on other ports.
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
	p, err := testcert.New()
	if err != nil {
		return err
	}
	s.caPEM = p.CAPEM
	s.caFile = filepath.Join(s.dir, "ca.pem")
	// receivedid.key keys the IDs mox puts in Received headers; localserve
	// logs an error and makes one up when it is missing.
	rid := make([]byte, 16+8)
	rand.Read(rid)
	files := map[string][]byte{
		"ca.pem":         p.CAPEM,
		"cert.pem":       p.CertPEM,
		"key.pem":        p.KeyPEM,
		"receivedid.key": rid,
		"domains.conf":   []byte(fmt.Sprintf(domainsTemplate, Domain)),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// launch writes mox.conf for fresh ports and starts mox on it.
func (s *Server) launch() error {
	ports, err := childserver.FreePorts(2)
	if err != nil {
		return err
	}
	s.addrs = mailserver.Addrs{IMAPS: childserver.Addr(ports[0]), IMAP: childserver.Addr(ports[1])}
	conf := fmt.Sprintf(confTemplate, os.Getuid(), ports[1], ports[0])
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		return err
	}
	proc, err := childserver.Start("mox", filepath.Join(s.dir, "mox.log"), s.command("localserve", "-dir", s.dir))
	if err != nil {
		return err
	}
	// The control socket comes up only once every listener is bound (mox
	// exits if a bind fails), so it also proves the ports are mox's, not
	// another process's that took one since FreePorts. AddUser needs it.
	err = proc.WaitReady(startTimeout,
		childserver.Listening(s.addrs.IMAPS), childserver.Listening(s.addrs.IMAP),
		childserver.UnixListening(filepath.Join(s.dir, "data", "ctl")))
	if err != nil {
		proc.Stop()
		return fmt.Errorf("mox (%s, %s): %w", s.bin, s.version, err)
	}
	s.proc = proc
	return nil
}

func (s *Server) command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.bin, append([]string{"-config", s.conf}, args...)...)
	cmd.Dir = s.dir
	return cmd
}

// Name is "mox".
func (s *Server) Name() string { return "mox" }

// Version is what built the binary, e.g. "mox v0.0.17 go1.26.8".
func (s *Server) Version() string { return s.version }

// Addrs are IMAPS and IMAP (STARTTLS, required before login); the
// harness does not configure mox's SMTP, and mox has no POP3.
func (s *Server) Addrs() mailserver.Addrs { return s.addrs }

// CAFile is the PEM of the CA that signed mox's certificate.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM is the content of CAFile.
func (s *Server) CAPEM() []byte { return s.caPEM }

// Dir is mox's temporary directory (config, data, log).
func (s *Server) Dir() string { return s.dir }

// AddUser adds an account userN with the address userN@example.test (the
// login name) and a password, through mox's control socket. Home is the
// account's directory (index.db and msg/).
func (s *Server) AddUser() (mailserver.User, error) {
	s.mu.Lock()
	s.nUsers++
	n := s.nUsers
	s.mu.Unlock()
	account := fmt.Sprintf("user%d", n)
	u := mailserver.User{
		Name:     account + "@" + Domain,
		Password: fmt.Sprintf("pw-%d-%s", n, filepath.Base(s.dir)), // mox wants 8 characters or more
		Home:     filepath.Join(s.dir, "data", "accounts", account),
	}
	if err := s.cli("", "config", "account", "add", account, u.Name); err != nil {
		return mailserver.User{}, err
	}
	if err := s.cli(u.Password+"\n", "setaccountpassword", account); err != nil {
		return mailserver.User{}, err
	}
	return u, nil
}

// cli runs a mox subcommand against the running server.
func (s *Server) cli(stdin string, args ...string) error {
	cmd := s.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mox %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Seed appends msgs to u's inbox over IMAPS, in order, INTERNALDATEs one
// second apart. mox is a destination-only harness (mox has no POP3): Seed is
// for tests that need messages already in the destination, and goes through
// mox's IMAP APPEND, so mox's automatic junk flags apply.
func (s *Server) Seed(u mailserver.User, msgs [][]byte) error {
	return childserver.SeedIMAP(s.addrs.IMAPS, s.caPEM, u.Name, u.Password, "INBOX", msgs)
}

// Log returns mox's log so far.
func (s *Server) Log() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Log()
}

// Stop kills mox and removes its directory. Safe to call more than once.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.Stop()
	}
	os.RemoveAll(s.dir)
}

// confTemplate is mox.conf, in mox's sconf format (tabs indent, no quotes):
// %[1]d the uid to run as (ours: nothing to switch to), %[2]d the
// plaintext IMAP port, %[3]d the IMAPS port. Relative paths are relative to
// the file. LogLevel info: debug and trace make megabytes, traceauth logs
// passwords.
const confTemplate = `DataDir: data
LogLevel: info
User: %[1]d
Hostname: localhost
Listeners:
	local:
		IPs:
			- 127.0.0.1
		TLS:
			KeyCerts:
				-
					CertFile: cert.pem
					KeyFile: key.pem
		IMAP:
			Enabled: true
			Port: %[2]d
		IMAPS:
			Enabled: true
			Port: %[3]d
Postmaster:
	Account: postmaster
	Mailbox: Inbox
`

// domainsTemplate is domains.conf: %[1]s the domain. mox wants the
// postmaster account to exist; users are added by AddUser.
const domainsTemplate = `Domains:
	%[1]s: nil
Accounts:
	postmaster:
		Domain: %[1]s
		Destinations:
			postmaster@%[1]s: nil
`
