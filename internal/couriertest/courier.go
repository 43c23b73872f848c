// Package couriertest starts a real Courier-IMAP 5.0 and courier-pop 1.0
// (unpacked from Debian bookworm by internal/mailserver/install-servers.sh)
// on 127.0.0.1 high ports for integration tests: imapd (STARTTLS), imapd-ssl,
// pop3d (STLS) and pop3d-ssl, each a couriertcpd as Debian's init scripts
// start them, with the environment of Debian's /etc/courier/{imapd,pop3d}*
// files (read from the unpacked package) and a few overrides.
//
// Courier has /etc/courier, /usr/lib/courier-authlib and
// /run/courier/authdaemon compiled in; the servers run in a private mount
// namespace where those paths are the harness's own (see srvproc), so the
// host is not touched. Users come from a userdb (authuserdb) built with
// Courier's makeuserdb; mail lives in HOME/Maildir, so Seed writes files as
// any Maildir delivery does.
package couriertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/srvproc"
	"github.com/mailmove/mailmove/internal/testcert"
)

// Server is a running Courier.
type Server struct {
	dir     string
	caFile  string
	addrs   mailserver.Addrs
	mounts  *srvproc.Mounts
	proc    *srvproc.Proc
	startup time.Duration

	mu     sync.Mutex
	nUsers int
	seeded int
}

var _ mailserver.Server = (*Server)(nil)

const (
	// mailUID owns the users' Maildirs, as in dovecottest: Courier runs
	// imapd and pop3d as the uid userdb gives, never as root.
	mailUID = 1000
	// poolSize users exist before Courier starts, so none is added to the
	// userdb while authdaemond has it open.
	poolSize = 100
	// tlsUser is who couriertls drops to once it has the certificate.
	// imaplogin and courierpop3login have the name compiled in for STARTTLS
	// and STLS; courier-authlib's postinst, not run here, would create it.
	tlsUser = "courier"
	// maxPerIP replaces Debian's 4 POP3 (and 20 IMAP) connections per
	// address: every test connection comes from 127.0.0.1.
	maxPerIP = 50
)

// Start starts Courier in a temporary directory. Call Stop when done.
func Start() (*Server, error) {
	if err := srvproc.Check("usr/sbin/couriertcpd", "usr/bin/imapd", "usr/bin/couriertls",
		"usr/lib/courier/courier/courierpop3d", "usr/lib/courier/courier-authlib/authdaemond",
		"usr/lib/courier-authlib/libauthuserdb.so", "usr/sbin/makeuserdb"); err != nil {
		return nil, fmt.Errorf("courier: %w", err)
	}
	dir, err := os.MkdirTemp("", "mailmove-courier-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	t0 := time.Now()
	if err := s.start(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("courier: %w", err)
	}
	s.startup = time.Since(t0)
	return s, nil
}

func (s *Server) start() error {
	os.Chmod(s.dir, 0o755)
	for _, d := range []string{"etc", "run/authdaemon", "homes"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	s.mounts = &srvproc.Mounts{Scratch: s.dir}
	tuid, err := s.tlsUser()
	if err != nil {
		return err
	}
	// couriertls wants the key and the certificate in one PEM file.
	pair, err := testcert.New()
	if err != nil {
		return err
	}
	s.caFile = filepath.Join(s.dir, "ca.pem")
	if err := os.WriteFile(s.caFile, pair.CAPEM, 0o644); err != nil {
		return err
	}
	pem := filepath.Join(s.dir, "etc", "server.pem")
	if err := os.WriteFile(pem, append(append([]byte{}, pair.KeyPEM...), pair.CertPEM...), 0o600); err != nil {
		return err
	}
	cache := filepath.Join(s.dir, "run", "tlscache")
	if err := os.WriteFile(cache, nil, 0o600); err != nil {
		return err
	}
	for _, f := range []string{pem, cache} {
		if err := os.Chown(f, tuid, -1); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "etc", "authdaemonrc"), []byte(authdaemonrc), 0o644); err != nil {
		return err
	}

	root := srvproc.Root()
	s.mounts.Replace("/etc/courier", filepath.Join(s.dir, "etc"))
	s.mounts.Replace("/run/courier", filepath.Join(s.dir, "run"))
	s.mounts.Replace("/usr/lib/courier-authlib", filepath.Join(root, "usr/lib/courier-authlib"))
	s.mounts.Replace("/usr/lib/courier", filepath.Join(root, "usr/lib/courier"))
	if err := s.makeUsers(); err != nil {
		return err
	}

	ports, err := srvproc.FreePorts(4)
	if err != nil {
		return err
	}
	s.addrs = mailserver.Addrs{IMAP: srvproc.Addr(ports[0]), IMAPS: srvproc.Addr(ports[1]), POP3: srvproc.Addr(ports[2]), POP3S: srvproc.Addr(ports[3])}
	script := fmt.Sprintf(startScript, root, pem, cache, tlsUser, maxPerIP, ports[0], ports[1], ports[2], ports[3])
	cmd, err := srvproc.Command(s.mounts, script)
	if err != nil {
		return err
	}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", srvproc.LibraryPath()}
	if s.proc, err = srvproc.Start("courier", cmd, filepath.Join(s.dir, "courier.log")); err != nil {
		return err
	}
	if err := s.proc.WaitListening([]string{s.addrs.IMAP, s.addrs.IMAPS, s.addrs.POP3, s.addrs.POP3S}, 15*time.Second, nil); err != nil {
		return err
	}
	// imaplogin and courierpop3login ask authdaemond at each login: wait
	// for its socket too, or the first login can be refused.
	sock := filepath.Join(s.dir, "run/authdaemon/socket")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("authdaemond made no socket %s:\n%s", sock, s.Log())
		}
	}
}

// tlsUser returns the uid of tlsUser. When the host has no such user, the
// namespace gets copies of /etc/passwd and /etc/group (no secrets there)
// with the user added, under a uid and gid the host does not use.
func (s *Server) tlsUser() (int, error) {
	if u, err := user.Lookup(tlsUser); err == nil {
		return strconv.Atoi(u.Uid)
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return 0, err
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		return 0, err
	}
	id := 64000
	for ; id < 65000; id++ {
		n := ":" + strconv.Itoa(id) + ":"
		if !strings.Contains(string(passwd), n) && !strings.Contains(string(group), n) {
			break
		}
	}
	for name, b := range map[string][]byte{
		"passwd": fmt.Appendf(passwd, "%s:x:%d:%d:Courier mail server:/nonexistent:/usr/sbin/nologin\n", tlsUser, id, id),
		"group":  fmt.Appendf(group, "%s:x:%d:\n", tlsUser, id),
	} {
		p := filepath.Join(s.dir, "etc-"+name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return 0, err
		}
		s.mounts.Replace("/etc/"+name, p)
	}
	return id, nil
}

func (s *Server) user(i int) mailserver.User {
	return mailserver.User{
		Name:     fmt.Sprintf("user%d@example.test", i),
		Password: fmt.Sprintf("pw-%d-%s", i, filepath.Base(s.dir)),
		Home:     filepath.Join(s.dir, "homes", strconv.Itoa(i)),
	}
}

// makeUsers writes the pool into /etc/courier/userdb (mode 0600: makeuserdb
// refuses a readable one, it holds the hashes) and runs makeuserdb, which
// builds userdb.dat and userdbshadow.dat from it.
func (s *Server) makeUsers() error {
	var b strings.Builder
	for i := 1; i <= poolSize; i++ {
		u := s.user(i)
		for _, d := range []string{"", "Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"} {
			p := filepath.Join(u.Home, d)
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
			if err := os.Chown(p, mailUID, mailUID); err != nil {
				return err
			}
		}
		// authlib checks {SHA256} as the base64 of the SHA-256 digest.
		sum := sha256.Sum256([]byte(u.Password))
		fmt.Fprintf(&b, "%s\tuid=%d|gid=%d|home=%s|mail=%s/Maildir|systempw={SHA256}%s\n",
			u.Name, mailUID, mailUID, u.Home, u.Home, base64.StdEncoding.EncodeToString(sum[:]))
	}
	if err := os.WriteFile(filepath.Join(s.dir, "etc", "userdb"), []byte(b.String()), 0o600); err != nil {
		return err
	}
	cmd, err := srvproc.Command(s.mounts, `exec "$@"`, "/usr/bin/perl", filepath.Join(srvproc.Root(), "usr/sbin/makeuserdb"))
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("makeuserdb: %v: %s", err, out)
	}
	return nil
}

// Name is "courier".
func (s *Server) Name() string { return "courier" }

// Addrs are imapd (STARTTLS), imapd-ssl, pop3d (STLS) and pop3d-ssl.
func (s *Server) Addrs() mailserver.Addrs { return s.addrs }

// CAFile is the PEM of the CA that signed the server's certificate.
func (s *Server) CAFile() string { return s.caFile }

// Startup is how long Start took, until every listener and authdaemond
// answered.
func (s *Server) Startup() time.Duration { return s.startup }

// Log is what couriertcpd, authdaemond and the servers wrote to stderr
// (courierlogger would pass it to syslog).
func (s *Server) Log() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Output()
}

// Stop kills every Courier process and removes the directory.
func (s *Server) Stop() {
	s.proc.Stop()
	os.RemoveAll(s.dir)
}

// AddUser returns a fresh user of the pool, with an empty Maildir.
func (s *Server) AddUser() (mailserver.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nUsers >= poolSize {
		return mailserver.User{}, fmt.Errorf("couriertest: all %d users are taken", poolSize)
	}
	s.nUsers++
	return s.user(s.nUsers), nil
}

// Seed writes msgs into u's Maildir/new (tmp, then rename, as maildir(5)
// delivery does), byte for byte but for line ends: Courier keeps a Maildir
// file's lines with LF alone and adds the CR when it serves them (a CRLF
// file would come back with CR CR LF), so CRLF is written as LF. Courier
// takes a file's mtime as its INTERNALDATE: message i is one second after
// message i-1.
func (s *Server) Seed(u mailserver.User, msgs [][]byte) error {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s.mu.Lock()
	first := s.seeded // names unique across calls
	s.seeded += len(msgs)
	s.mu.Unlock()
	for i, m := range msgs {
		i := first + i
		name := fmt.Sprintf("%d.M%dP%d.mailmove-test", base.Unix()+int64(i), i, os.Getpid())
		tmp := filepath.Join(u.Home, "Maildir", "tmp", name)
		if err := os.WriteFile(tmp, bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n")), 0o600); err != nil {
			return err
		}
		if err := os.Chown(tmp, mailUID, mailUID); err != nil {
			return err
		}
		t := base.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(tmp, t, t); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(u.Home, "Maildir", "new", name)); err != nil {
			return err
		}
	}
	return nil
}

// Main is for TestMain: it starts one Courier for the package's tests, runs
// them and stops it. A Courier that cannot start is reported loudly and its
// error left in *err for mailserver.Need to fail or skip each test.
func Main(m *testing.M, srv **Server, err *error) int {
	s, e := Start()
	if e != nil {
		*err = e
		mailserver.Skipped("courier", e)
		return m.Run()
	}
	*srv = s
	defer s.Stop()
	return m.Run()
}

// authdaemonrc: only the userdb module (Debian's default is authpam, the
// system's users).
const authdaemonrc = `authmodulelist="authuserdb"
authmodulelistorig="authuserdb"
daemons=5
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
`

// startScript runs authdaemond and the four couriertcpd listeners as
// Debian's init scripts do (/usr/lib/courier/{imapd,imapd-ssl,pop3d,
// pop3d-ssl}), without courierlogger: their stderr is the harness's log.
// Each listener sources the Debian configuration files of the unpacked
// package (set -a exports every variable, as the init scripts do), then
// overrides what the harness owns: certificate, cache, couriertls's path.
// %[1]s root, %[2]s pem, %[3]s cache, %[4]s tls user, %[5]d max per IP,
// %[6]d..%[9]d ports.
const startScript = `
R=%[1]s
conf() {
	set -a
	. "$R/etc/courier/$1"
	. "$R/etc/courier/$2"
	TLS_CERTFILE=%[2]s
	TLS_CACHEFILE=%[3]s
	TLS_DHPARAMS=
	COURIERTLS=$R/usr/bin/couriertls
	set +a
}
tcpd() {
	port=$1
	shift
	exec "$R/usr/sbin/couriertcpd" -address=127.0.0.1 -maxprocs=40 -maxperip=%[5]d -nodnslookup -noidentlookup "$port" "$@"
}
"$R/usr/lib/courier/courier-authlib/authdaemond" &
(conf imapd imapd-ssl; export IMAP_STARTTLS=$IMAPDSTARTTLS; tcpd %[6]d "$R/usr/lib/courier/courier/imaplogin" "$R/usr/bin/imapd" Maildir) &
(conf imapd imapd-ssl; export IMAP_TLS=1; tcpd %[7]d "$COURIERTLS" -server -tcpd -user=%[4]s "$R/usr/lib/courier/courier/imaplogin" "$R/usr/bin/imapd" Maildir) &
(conf pop3d pop3d-ssl; tcpd %[8]d "$R/usr/lib/courier/courier/courierpop3login" "$R/usr/lib/courier/courier/courierpop3d" Maildir) &
(conf pop3d pop3d-ssl; export POP3_TLS=1 POP3_STARTTLS=NO; tcpd %[9]d "$COURIERTLS" -server -tcpd -user=%[4]s "$R/usr/lib/courier/courier/courierpop3login" "$R/usr/lib/courier/courier/courierpop3d" Maildir) &
wait
`
