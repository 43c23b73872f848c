// Package dovecottest starts a real Dovecot 2.3 (IMAP and POP3, with TLS from
// a generated certificate authority) on 127.0.0.1 high ports for integration
// tests, and creates throwaway mail users in it. It never touches
// /etc/dovecot. Dovecot must be installed (make test does it with apt-get);
// when it is missing or cannot start, tests are skipped, except under CI=true,
// where they fail.
package dovecottest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/testcert"
)

// Server is a running Dovecot.
type Server struct {
	Dir    string
	CAFile string // PEM of the CA that signed the server certificate
	CAPEM  []byte

	IMAP, IMAPS, POP3, POP3S string // host:port

	// OAuth is the token introspection endpoint of the oauth2 passdb: every
	// user can also sign in with XOAUTH2 or OAUTHBEARER and a token it allows.
	OAuth *Introspection

	conf   string
	bin    string
	proc   *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	nUsers int
	seeded int
	fields map[string]string // user: extra passwd-file fields
}

// User is a mail account in the running Dovecot.
type User struct {
	Name, Password, Home string
}

const uid = 1000 // mail files' owner; Dovecot refuses root

// Start starts Dovecot in a temporary directory. Call Stop when done.
func Start() (*Server, error) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d): %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("starting dovecot needs root")
	}
	dir, err := os.MkdirTemp("", "mailmove-dovecot-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	s := &Server{Dir: dir, conf: filepath.Join(dir, "dovecot.conf")}
	if err := s.writeCerts(); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	s.IMAP, s.IMAPS, s.POP3, s.POP3S = addr(ports[0]), addr(ports[1]), addr(ports[2]), addr(ports[3])
	for _, d := range []string{"run", "state", "homes"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := s.makeUsers(); err != nil {
		return nil, err
	}
	dh := ""
	if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err == nil {
		dh = "ssl_dh = </usr/share/dovecot/dh.pem"
	}
	if s.OAuth, err = startIntrospection(); err != nil {
		return nil, err
	}
	oauthConf := fmt.Sprintf(oauthTemplate, s.OAuth.URL)
	if err := os.WriteFile(filepath.Join(dir, "oauth2.conf.ext"), []byte(oauthConf), 0o644); err != nil {
		s.OAuth.close()
		return nil, err
	}
	conf := fmt.Sprintf(confTemplate, dir, dh, ports[0], ports[1], ports[2], ports[3])
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		s.OAuth.close()
		return nil, err
	}
	s.bin = bin
	if err := s.launch(); err != nil {
		s.OAuth.close()
		return nil, err
	}
	return s, nil
}

// launch starts the Dovecot daemon on the configuration already written and
// waits until it listens.
func (s *Server) launch() error {
	dir, bin := s.Dir, s.bin
	// Not CombinedOutput: the daemon's children would hold the pipe open.
	outPath := filepath.Join(dir, "start.out")
	outFile, err := os.Create(outPath)
	if err != nil {
		return err
	}
	// In the foreground (-F), as our child: Kill can wait for it to be
	// gone, whatever reaps orphans on this machine.
	cmd := exec.Command(bin, "-F", "-c", s.conf)
	cmd.Stdout, cmd.Stderr = outFile, outFile
	if err := cmd.Start(); err != nil {
		outFile.Close()
		return fmt.Errorf("dovecot did not start: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		outFile.Close()
		close(exited)
	}()
	s.proc, s.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range []string{s.IMAP, s.IMAPS, s.POP3, s.POP3S} {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				out, _ := os.ReadFile(outPath)
				log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
				return fmt.Errorf("dovecot exited: %s %s", out, log)
			default:
			}
			if time.Now().After(deadline) {
				s.Kill()
				log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
				return fmt.Errorf("dovecot is not listening on %s: %s", a, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Restart stops Dovecot and starts it again on the same ports, with the same
// mail, as an admin's restart or a crash does.
func (s *Server) Restart() error {
	s.Kill()
	return s.launch()
}

// Doveadm returns a doveadm command for this Dovecot.
func (s *Server) Doveadm(args ...string) *exec.Cmd {
	bin, err := exec.LookPath("doveadm")
	if err != nil {
		bin = "/usr/bin/doveadm"
	}
	return exec.Command(bin, append([]string{"-c", s.conf}, args...)...)
}

// QuotaUser is the i-th (0 to quotaUsers-1) account with a storage quota of
// about quotaKB kilobytes.
func (s *Server) QuotaUser(i int) User {
	name := fmt.Sprintf("quota%d", i)
	return User{Name: name + "@example.test", Password: "pw-" + name + "-" + filepath.Base(s.Dir), Home: filepath.Join(s.Dir, "homes", name)}
}

const (
	quotaKB    = 300
	quotaUsers = 4
)

// Stop stops Dovecot and removes its directory.
func (s *Server) Stop() {
	if s.proc != nil {
		// No graceful shutdown at teardown: it takes Dovecot seconds.
		s.proc.Process.Kill()
		<-s.exited
		s.proc = nil
	}
	s.OAuth.close()
	os.RemoveAll(s.Dir)
}

// Kill stops Dovecot as an admin does (SIGTERM; it takes some seconds),
// keeping its mail, so Restart can bring it back.
func (s *Server) Kill() {
	if s.proc == nil {
		return
	}
	s.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.proc.Process.Kill()
		<-s.exited
	}
	s.proc = nil
}

// Log returns Dovecot's log so far, for test failures.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	return string(b)
}

// poolSize users exist before Dovecot starts: Dovecot re-reads a changed
// passwd-file at most once a second, so a user added while it runs could be
// refused for a moment.
const poolSize = 200

func (s *Server) makeUsers() error {
	for i := 1; i <= poolSize; i++ {
		if err := makeHome(s.user(i).Home); err != nil {
			return err
		}
	}
	for i := range quotaUsers {
		if err := makeHome(s.QuotaUser(i).Home); err != nil {
			return err
		}
	}
	return s.writePasswd()
}

func makeHome(home string) error {
	for _, d := range []string{"", "Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"} {
		p := filepath.Join(home, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		os.Chown(p, uid, uid)
	}
	return nil
}

// writePasswd writes the passwd-file of every user, with the extra fields
// SetFields gave them; Dovecot reads it again when it changes.
func (s *Server) writePasswd() error {
	var b strings.Builder
	for i := 1; i <= poolSize; i++ {
		u := s.user(i)
		fmt.Fprintf(&b, "%s:{PLAIN}%s:%d:%d::%s::%s\n", u.Name, u.Password, uid, uid, u.Home, s.fields[u.Name])
	}
	for i := range quotaUsers {
		q := s.QuotaUser(i)
		fmt.Fprintf(&b, "%s:{PLAIN}%s:%d:%d::%s::userdb_quota_rule=*:storage=%dK\n", q.Name, q.Password, uid, uid, q.Home, quotaKB)
	}
	tmp := filepath.Join(s.Dir, "passwd.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.Dir, "passwd"))
}

// SetFields gives user u these extra passwd-file fields (space-separated,
// e.g. "userdb_quota_max_mail_size=100k"; "" for none) and waits until
// Dovecot's userdb answers with them, as an admin's change of a user's
// settings on a running server.
func (s *Server) SetFields(u User, fields string) error {
	s.mu.Lock()
	if s.fields == nil {
		s.fields = map[string]string{}
	}
	old := s.fields[u.Name]
	s.fields[u.Name] = fields
	err := s.writePasswd()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// doveadm user prints the userdb's fields as "key : value" lines.
	want, gone := map[string]string{}, []string{}
	for _, f := range strings.Fields(fields) {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "userdb_"), "=")
		want[k] = v
	}
	for _, f := range strings.Fields(old) {
		k, _, _ := strings.Cut(strings.TrimPrefix(f, "userdb_"), "=")
		if _, kept := want[k]; !kept {
			gone = append(gone, k)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := s.Doveadm("user", "-u", u.Name).CombinedOutput()
		has := map[string]string{}
		for _, l := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				has[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		ok := true
		for k, v := range want {
			ok = ok && has[k] == v
		}
		for _, k := range gone {
			_, there := has[k]
			ok = ok && !there
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecot's userdb still says, for %s: %s", u.Name, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) user(i int) User {
	return User{
		Name:     fmt.Sprintf("user%d@example.test", i),
		Password: fmt.Sprintf("pw-%d-%s", i, filepath.Base(s.Dir)),
		Home:     filepath.Join(s.Dir, "homes", strconv.Itoa(i)),
	}
}

// AddUser returns a fresh mail user with an empty mailbox.
func (s *Server) AddUser() (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nUsers >= poolSize {
		return User{}, fmt.Errorf("dovecottest: all %d users are taken", poolSize)
	}
	s.nUsers++
	return s.user(s.nUsers), nil
}

// Seed puts messages straight into the user's INBOX (the POP3 mailbox), in
// order, faster than any protocol. Each message's mtime (its INTERNALDATE) is
// a second after the previous one.
func (s *Server) Seed(u User, msgs [][]byte) error {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s.mu.Lock()
	first := s.seeded // names stay unique across calls: Dovecot keys messages by them
	s.seeded += len(msgs)
	s.mu.Unlock()
	for i, m := range msgs {
		i := first + i
		name := fmt.Sprintf("%d.M%dP%d.mailmove-test", base.Unix()+int64(i), i, os.Getpid())
		tmp := filepath.Join(u.Home, "Maildir", "tmp", name)
		if err := os.WriteFile(tmp, m, 0o600); err != nil {
			return err
		}
		os.Chown(tmp, uid, uid)
		t := base.Add(time.Duration(i) * time.Second)
		os.Chtimes(tmp, t, t)
		if err := os.Rename(tmp, filepath.Join(u.Home, "Maildir", "new", name)); err != nil {
			return err
		}
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func (s *Server) writeCerts() error {
	p, err := testcert.New()
	if err != nil {
		return err
	}
	s.CAPEM = p.CAPEM
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	if err := os.WriteFile(s.CAFile, p.CAPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "cert.pem"), p.CertPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "key.pem"), p.KeyPEM, 0o600)
}

// Main is for TestMain: it starts one Dovecot for the package's tests, runs
// them, and stops it. Under CI=true a Dovecot that cannot start fails the run.
func Main(m *testing.M, srv **Server) int {
	s, err := Start()
	if err != nil {
		if mailserver.Required("dovecot") {
			fmt.Fprintln(os.Stderr, "FAIL: Dovecot is required under CI=true:", err)
			return 1
		}
		mailserver.Skipped("dovecot", err)
	} else {
		*srv = s
		defer s.Stop()
	}
	return m.Run()
}

// Need returns the package's Dovecot or skips the test when there is none
// (Main already failed the run under CI=true).
func Need(t testing.TB, s *Server) *Server {
	t.Helper()
	if s == nil {
		if mailserver.Required("dovecot") {
			t.Fatal("Dovecot is required under CI=true")
		}
		t.Skip("Dovecot is not available")
	}
	return s
}

// confTemplate configures Dovecot on high ports of 127.0.0.1. The \Sent and
// \Archive folders are named "Sent Messages" and "Archive", unlike
// Thunderbird's "Sent" and "Archives", so tests show folders found by their
// special-use attribute (RFC 6154), not by name.
const confTemplate = `
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
ssl_min_protocol = TLSv1.2
%[2]s
disable_plaintext_auth = yes
auth_mechanisms = plain login xoauth2 oauthbearer
first_valid_uid = 500
mail_location = maildir:~/Maildir
mail_fsync = never
mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_vsizes = yes
}
pop3_uidl_format = %%08Xu%%08Xv
mail_max_userip_connections = 50
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = %[1]s/passwd
}
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = %[1]s/oauth2.conf.ext
}
userdb {
  driver = passwd-file
  args = %[1]s/passwd
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Junk {
    special_use = \Junk
    auto = create
  }
  mailbox "Sent Messages" {
    special_use = \Sent
    auto = create
  }
  mailbox Archive {
    special_use = \Archive
    auto = create
  }
  mailbox Trash {
    special_use = \Trash
    auto = create
  }
  mailbox Drafts {
    special_use = \Drafts
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[3]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[4]d
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = %[6]d
    ssl = yes
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`

// oauthTemplate configures the oauth2 passdb to ask the in-process
// introspection endpoint about every token (RFC 7662, by POST).
const oauthTemplate = `introspection_mode = post
introspection_url = %s
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
`

// Mailserver is s as a mailserver.Server, for the conformance suites.
func (s *Server) Mailserver() mailserver.Server { return asServer{s} }

type asServer struct{ s *Server }

func (a asServer) Name() string { return "dovecot" }
func (a asServer) Addrs() mailserver.Addrs {
	return mailserver.Addrs{IMAP: a.s.IMAP, IMAPS: a.s.IMAPS, POP3: a.s.POP3, POP3S: a.s.POP3S}
}
func (a asServer) CAFile() string { return a.s.CAFile }
func (a asServer) AddUser() (mailserver.User, error) {
	u, err := a.s.AddUser()
	return mailserver.User{Name: u.Name, Password: u.Password, Home: u.Home}, err
}
func (a asServer) Seed(u mailserver.User, msgs [][]byte) error {
	return a.s.Seed(User{Name: u.Name, Password: u.Password, Home: u.Home}, msgs)
}
func (a asServer) Log() string { return a.s.Log() }
func (a asServer) Stop()       {} // the package's TestMain stops it
