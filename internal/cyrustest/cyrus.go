// Package cyrustest starts a real Cyrus IMAP 3.6 (imapd and pop3d, unpacked
// from Debian bookworm by internal/mailserver/install-servers.sh) on
// 127.0.0.1 high ports for integration tests.
//
// It keeps the settings of Debian's imapd.conf that clients see:
// altnamespace: no and unixhierarchysep: no, so the personal namespace is
// (("INBOX." ".")) and a top-level CREATE is refused; reject8bit: no, so an
// APPEND with 8-bit header bytes is stored with each such byte replaced by
// 'X' (StartWith(Options{Reject8bit: true}) makes it refuse them instead).
// Users live in a private sasldb; mail in the server's own spool.
package cyrustest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/srvproc"
	"github.com/mailmove/mailmove/internal/testcert"
)

// Options are the imapd.conf settings a test may change.
type Options struct {
	// Reject8bit: yes makes Cyrus answer an APPEND (and an LMTP delivery)
	// with 8-bit header bytes "NO Message contains non-ASCII characters in
	// headers" instead of replacing them with 'X'.
	Reject8bit bool
}

// Server is a running Cyrus.
type Server struct {
	dir, conf string
	caFile    string
	addrs     mailserver.Addrs
	cred      *syscall.Credential // Cyrus's user: services and tools run as it
	adminPass string

	proc    *srvproc.Proc
	syslog  *srvproc.Syslog
	startup time.Duration

	mu     sync.Mutex
	nUsers int
	seeded int
	seedMu sync.Mutex // one Seed at a time: each numbers files from the last UID
}

var _ mailserver.Server = (*Server)(nil)

// cyrusUser owns the spool and runs the services (imapd.conf cyrus_user).
// Debian's postinst creates a "cyrus" user; the packages are only unpacked
// here, so the harness uses "mail", which every Debian system has.
const cyrusUser = "mail"

// realm is the SASL realm: Cyrus looks users up in the sasldb under its
// servername.
const realm = "mailmove.test"

func bin(name string) string { return filepath.Join(srvproc.Root(), "usr/lib/cyrus/bin", name) }

// Start starts Cyrus with Debian's defaults. Call Stop when done.
func Start() (*Server, error) { return StartWith(Options{}) }

// StartWith starts Cyrus with o's settings.
func StartWith(o Options) (*Server, error) {
	if err := srvproc.Check("usr/lib/cyrus/bin/master", "usr/lib/cyrus/bin/imapd", "usr/lib/cyrus/bin/pop3d", "usr/sbin/saslpasswd2"); err != nil {
		return nil, fmt.Errorf("cyrus: %w", err)
	}
	u, err := user.Lookup(cyrusUser)
	if err != nil {
		return nil, fmt.Errorf("cyrus: user %s: %w", cyrusUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "mailmove-cyrus-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, conf: filepath.Join(dir, "imapd.conf"), cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	t0 := time.Now()
	if err := s.start(o); err != nil {
		s.Stop()
		return nil, fmt.Errorf("cyrus: %w", err)
	}
	s.startup = time.Since(t0)
	return s, nil
}

// Startup is how long Start took, until every listener accepted.
func (s *Server) Startup() time.Duration { return s.startup }

func (s *Server) start(o Options) error {
	os.Chmod(s.dir, 0o755)
	// configdirectory's subdirectories, as Debian's cyrus-makedirs makes them.
	for _, d := range []string{"lib/db", "lib/socket", "lib/proc", "lib/log", "lib/msg", "lib/user", "lib/quota", "lib/sieve", "spool", "run/lock", "run/socket", "run/proc"} {
		if err := s.mkdir(d); err != nil {
			return err
		}
	}
	pair, err := testcert.New()
	if err != nil {
		return err
	}
	s.caFile = filepath.Join(s.dir, "ca.pem")
	for name, b := range map[string][]byte{"ca.pem": pair.CAPEM, "cert.pem": pair.CertPEM, "key.pem": pair.KeyPEM} {
		if err := s.writeFile(name, b); err != nil {
			return err
		}
	}
	ports, err := srvproc.FreePorts(4)
	if err != nil {
		return err
	}
	s.addrs = mailserver.Addrs{IMAP: srvproc.Addr(ports[0]), IMAPS: srvproc.Addr(ports[1]), POP3: srvproc.Addr(ports[2]), POP3S: srvproc.Addr(ports[3])}
	reject8bit := "no"
	if o.Reject8bit {
		reject8bit = "yes"
	}
	if err := s.writeFile("imapd.conf", fmt.Appendf(nil, imapdConf, s.dir, realm, reject8bit)); err != nil {
		return err
	}
	svc := func(name string, args ...string) string {
		return strconv.Quote(strings.Join(append([]string{bin(name), "-C", s.conf}, args...), " "))
	}
	cyrusConf := fmt.Sprintf(cyrusConfTemplate, svc("ctl_cyrusdb", "-r"),
		svc("imapd", "-U", "30"), s.addrs.IMAP, svc("imapd", "-s", "-U", "30"), s.addrs.IMAPS,
		svc("pop3d", "-U", "30"), s.addrs.POP3, svc("pop3d", "-s", "-U", "30"), s.addrs.POP3S)
	if err := s.writeFile("cyrus.conf", []byte(cyrusConf)); err != nil {
		return err
	}
	s.adminPass = "admin-" + filepath.Base(s.dir)
	if err := s.setPassword("cyrus", s.adminPass); err != nil {
		return err
	}

	if s.syslog, err = srvproc.ListenSyslog(filepath.Join(s.dir, "syslog.sock")); err != nil {
		return err
	}
	m := &srvproc.Mounts{Scratch: s.dir}
	m.Replace("/dev/log", s.syslog.Path)
	// master stays in the foreground (no -d), as the namespace's init; it
	// drops to cyrus_user by itself.
	cmd, err := srvproc.Command(m, `exec "$@"`, bin("master"), "-C", s.conf, "-M", filepath.Join(s.dir, "cyrus.conf"), "-p", filepath.Join(s.dir, "run/master.pid"))
	if err != nil {
		return err
	}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", srvproc.LibraryPath()}
	if s.proc, err = srvproc.Start("cyrus master", cmd, filepath.Join(s.dir, "master.out")); err != nil {
		return err
	}
	return s.proc.WaitListening([]string{s.addrs.IMAP, s.addrs.IMAPS, s.addrs.POP3, s.addrs.POP3S}, 15*time.Second, s.syslog.String)
}

func (s *Server) mkdir(d string) error {
	p := filepath.Join(s.dir, d)
	if err := os.MkdirAll(p, 0o750); err != nil {
		return err
	}
	for ; p != s.dir; p = filepath.Dir(p) {
		if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) writeFile(name string, b []byte) error {
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return err
	}
	return os.Chown(p, int(s.cred.Uid), int(s.cred.Gid))
}

// tool runs one of Cyrus's programs as cyrus_user, so that the files and
// locks it creates stay usable by the services.
func (s *Server) tool(stdin []byte, path string, args ...string) (string, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", srvproc.LibraryPath()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", filepath.Base(path), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *Server) setPassword(name, pw string) error {
	_, err := s.tool([]byte(pw), filepath.Join(srvproc.Root(), "usr/sbin/saslpasswd2"), "-p", "-c", "-f", filepath.Join(s.dir, "lib/sasldb2"), "-u", realm, name)
	return err
}

// Name is "cyrus".
func (s *Server) Name() string { return "cyrus" }

// Addrs are the imap (STARTTLS), imaps, pop3 (STLS) and pop3s listeners.
func (s *Server) Addrs() mailserver.Addrs { return s.addrs }

// CAFile is the PEM of the CA that signed the server's certificate.
func (s *Server) CAFile() string { return s.caFile }

// Log is Cyrus's syslog output and master's own output.
func (s *Server) Log() string {
	out := ""
	if s.proc != nil {
		out = s.proc.Output()
	}
	return s.syslog.String() + out
}

// Stop kills Cyrus and its services and removes its directory.
func (s *Server) Stop() {
	s.proc.Stop()
	s.syslog.Close()
	os.RemoveAll(s.dir)
}

// AddUser makes a sasldb user and its INBOX (user.NAME), created by the
// admin as an administrator's cyradm does, so the user's first login is the
// test's own.
func (s *Server) AddUser() (mailserver.User, error) {
	s.mu.Lock()
	s.nUsers++
	n := s.nUsers
	s.mu.Unlock()
	// No dot in names: with unixhierarchysep: no, "." is the hierarchy
	// separator, so it cannot be part of a user name.
	u := mailserver.User{Name: fmt.Sprintf("user%d", n), Password: fmt.Sprintf("pw-%d-%s", n, filepath.Base(s.dir))}
	if err := s.setPassword(u.Name, u.Password); err != nil {
		return u, err
	}
	if err := s.admin("CREATE user." + u.Name); err != nil {
		return u, fmt.Errorf("cyrus: create user.%s: %w", u.Name, err)
	}
	path, _, err := s.examine(u)
	if err != nil {
		return u, err
	}
	u.Home = path
	return u, nil
}

// admin runs one command as the admin over plaintext IMAP (allowplaintext
// is Debian's default) and fails unless it is answered OK.
func (s *Server) admin(command string) error {
	c, err := net.DialTimeout("tcp", s.addrs.IMAP, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		return err
	}
	fmt.Fprintf(c, "a LOGIN cyrus %q\r\nb %s\r\nc LOGOUT\r\n", s.adminPass, command)
	for _, tag := range []string{"a ", "b ", "c "} {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if strings.HasPrefix(line, tag) {
				if !strings.HasPrefix(line, tag+"OK") {
					return fmt.Errorf("%s", strings.TrimSpace(line))
				}
				break
			}
		}
	}
	return nil
}

var (
	pathRE    = regexp.MustCompile(`(?m)^\s*Path to mailbox: (.+)$`)
	lastUIDRE = regexp.MustCompile(`Last UID: (\d+)`)
)

// examine returns the directory of u's INBOX and its last UID, from
// mbexamine's report of the mailbox header and index.
func (s *Server) examine(u mailserver.User) (string, int, error) {
	out, err := s.tool(nil, bin("mbexamine"), "-C", s.conf, "-u", "0", "user."+u.Name)
	if err != nil {
		return "", 0, err
	}
	p, l := pathRE.FindStringSubmatch(out), lastUIDRE.FindStringSubmatch(out)
	if p == nil || l == nil {
		return "", 0, fmt.Errorf("cyrus: mbexamine user.%s: no path or last UID in %q", u.Name, out)
	}
	last, _ := strconv.Atoi(l[1])
	return strings.TrimSpace(p[1]), last, nil
}

// Seed puts msgs into u's INBOX byte for byte, without IMAP: APPEND would
// replace 8-bit header bytes (reject8bit: no) or refuse them (yes), the very
// behaviour tests look at. Each message is written as the file UID. in the
// mailbox directory and `reconstruct` indexes the new files; it takes a
// message's mtime as its INTERNALDATE, so message i arrives one second after
// message i-1. Cyrus keeps messages with CRLF line ends and serves the file
// as is over POP3, so a bare LF is written as CRLF.
func (s *Server) Seed(u mailserver.User, msgs [][]byte) error {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s.seedMu.Lock()
	defer s.seedMu.Unlock()
	s.mu.Lock()
	first := s.seeded
	s.seeded += len(msgs)
	s.mu.Unlock()
	path, last, err := s.examine(u)
	if err != nil {
		return err
	}
	for i, m := range msgs {
		name := filepath.Join(path, strconv.Itoa(last+1+i)+".")
		if err := os.WriteFile(name, crlf(m), 0o600); err != nil {
			return err
		}
		if err := os.Chown(name, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
		t := base.Add(time.Duration(first+i) * time.Second)
		if err := os.Chtimes(name, t, t); err != nil {
			return err
		}
	}
	_, err = s.tool(nil, bin("reconstruct"), "-C", s.conf, "user."+u.Name)
	return err
}

// crlf turns each bare LF into CRLF.
func crlf(m []byte) []byte {
	if !bytes.Contains(m, []byte("\n")) {
		return m
	}
	out := make([]byte, 0, len(m)+len(m)/32)
	for i, c := range m {
		if c == '\n' && (i == 0 || m[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// Main is for TestMain: it starts one Cyrus for the package's tests, runs
// them and stops it. A Cyrus that cannot start is reported loudly and its
// error left in *err for mailserver.Need to fail or skip each test.
func Main(m *testing.M, srv **Server, err *error) int {
	s, e := Start()
	if e != nil {
		*err = e
		mailserver.Skipped("cyrus", e)
		return m.Run()
	}
	*srv = s
	defer s.Stop()
	return m.Run()
}

// imapdConf keeps Debian's imapd.conf settings except paths (all in the
// test's directory) and popminpoll: Debian's 1 allows one POP3 login per
// user a minute (-ERR [LOGIN-DELAY], RFC 2449), and tests log in more often.
const imapdConf = `configdirectory: %[1]s/lib
defaultpartition: default
partition-default: %[1]s/spool
proc_path: %[1]s/run/proc
mboxname_lockpath: %[1]s/run/lock
lmtpsocket: %[1]s/run/socket/lmtp
idlesocket: %[1]s/run/socket/idle
notifysocket: %[1]s/run/socket/notify
servername: %[2]s
cyrus_user: ` + cyrusUser + `
admins: cyrus
altnamespace: no
unixhierarchysep: no
reject8bit: %[3]s
lmtp_downcase_rcpt: yes
allowanonymouslogin: no
popminpoll: 0
autocreate_quota: 0
umask: 077
hashimapspool: true
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: %[1]s/lib/sasldb2
sasl_mech_list: PLAIN LOGIN
sasl_auto_transition: no
tls_server_cert: %[1]s/cert.pem
tls_server_key: %[1]s/key.pem
tls_session_timeout: 1440
syslog_prefix: cyrus
`

// cyrusConfTemplate: the four listeners, and the database recovery Debian
// runs at START.
const cyrusConfTemplate = `START {
  recover cmd=%s
}
SERVICES {
  imap cmd=%s listen="%s" prefork=0 maxchild=100
  imaps cmd=%s listen="%s" prefork=0 maxchild=100
  pop3 cmd=%s listen="%s" prefork=0 maxchild=50
  pop3s cmd=%s listen="%s" prefork=0 maxchild=50
}
`
