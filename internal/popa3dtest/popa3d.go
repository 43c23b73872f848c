// Package popa3dtest starts a real popa3d 1.0.3 (unpacked from Debian
// bookworm by internal/mailserver/install-servers.sh) on a 127.0.0.1 high
// port for integration tests. popa3d is the plain RFC 1939 server: no CAPA,
// no STLS, no TLS, so Addrs has POP3 only.
//
// popa3d serves system users: PAM (service popa3d, pam_unix) checks their
// passwords in /etc/shadow and it reads their mail from /var/mail/USER,
// after a chroot into /var/lib/popa3d as user popa3d for the protocol
// parsing. It runs inetd-style under socat, in a private mount namespace
// (see srvproc) where /etc/passwd, /etc/shadow, /etc/group,
// /etc/pam.d/popa3d, /var/mail and /var/lib/popa3d are the harness's own:
// the host's accounts are neither read nor changed.
package popa3dtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailserver"
	"github.com/mailmove/mailmove/internal/srvproc"
)

// Server is a running popa3d.
type Server struct {
	dir     string
	addrs   mailserver.Addrs
	proc    *srvproc.Proc
	syslog  *srvproc.Syslog
	startup time.Duration

	mu     sync.Mutex
	nUsers int
	seeded int
}

var _ mailserver.Server = (*Server)(nil)

const (
	mailUID = 1000  // owns the mailboxes, as in dovecottest
	popUID  = 64001 // popa3d's own unprivileged user, only in the namespace
)

// Start starts popa3d in a temporary directory. Call Stop when done.
func Start() (*Server, error) {
	if err := srvproc.Check("usr/sbin/popa3d"); err != nil {
		return nil, fmt.Errorf("popa3d: %w", err)
	}
	for _, tool := range []string{"socat", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("popa3d: %s is not installed (make servers installs it)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "mailmove-popa3d-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	t0 := time.Now()
	if err := s.start(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("popa3d: %w", err)
	}
	s.startup = time.Since(t0)
	return s, nil
}

func (s *Server) start() error {
	os.Chmod(s.dir, 0o755)
	for _, d := range []string{"mail", "empty"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\npopa3d:x:%d:%d:popa3d:/var/lib/popa3d:/usr/sbin/nologin\n", popUID, popUID),
		"group":  fmt.Sprintf("root:x:0:\nmail:x:8:\npopa3d:x:%d:\nusers:x:%d:\n", popUID, mailUID),
		"shadow": "root:*:19000:0:99999:7:::\npopa3d:*:19000:0:99999:7:::\n",
		// pam_unix alone: Debian's common-auth may hold whatever the host
		// configured.
		"pam-popa3d": "auth required pam_unix.so\naccount required pam_unix.so\n",
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if name == "shadow" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), mode); err != nil {
			return err
		}
	}
	var err error
	if s.syslog, err = srvproc.ListenSyslog(filepath.Join(s.dir, "syslog.sock")); err != nil {
		return err
	}
	m := &srvproc.Mounts{Scratch: s.dir}
	// Bind mounts keep the inode: AddUser appends to these files in place.
	for _, f := range []string{"passwd", "group", "shadow"} {
		m.Replace("/etc/"+f, filepath.Join(s.dir, f))
	}
	m.Replace("/etc/pam.d/popa3d", filepath.Join(s.dir, "pam-popa3d"))
	m.Replace("/var/mail", filepath.Join(s.dir, "mail"))
	m.Replace("/var/lib/popa3d", filepath.Join(s.dir, "empty"))
	m.Replace("/dev/log", s.syslog.Path)

	ports, err := srvproc.FreePorts(1)
	if err != nil {
		return err
	}
	s.addrs = mailserver.Addrs{POP3: srvproc.Addr(ports[0])}
	// inetd-style: socat accepts and forks; nofork makes the forked socat
	// exec popa3d with the TCP socket itself as stdin and stdout.
	cmd, err := srvproc.Command(m, `exec socat "$@"`,
		fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,nodelay", ports[0]), // nodelay: socat would hold back small replies for the delayed ACK (40 ms a round trip)
		"EXEC:"+filepath.Join(srvproc.Root(), "usr/sbin/popa3d")+",nofork")
	if err != nil {
		return err
	}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if s.proc, err = srvproc.Start("popa3d", cmd, filepath.Join(s.dir, "socat.log")); err != nil {
		return err
	}
	return s.proc.WaitListening([]string{s.addrs.POP3}, 10*time.Second, s.syslog.String)
}

// Name is "popa3d".
func (s *Server) Name() string { return "popa3d" }

// Addrs has POP3 only: popa3d has no TLS.
func (s *Server) Addrs() mailserver.Addrs { return s.addrs }

// CAFile is "": popa3d has no TLS.
func (s *Server) CAFile() string { return "" }

// Startup is how long Start took, until the port accepted.
func (s *Server) Startup() time.Duration { return s.startup }

// Log is popa3d's syslog output and socat's.
func (s *Server) Log() string {
	out := ""
	if s.proc != nil {
		out = s.proc.Output()
	}
	return s.syslog.String() + out
}

// Stop kills socat and every popa3d and removes the directory.
func (s *Server) Stop() {
	s.proc.Stop()
	s.syslog.Close()
	os.RemoveAll(s.dir)
}

// AddUser adds a system user (to the namespace's passwd and shadow) with an
// empty /var/mail mailbox.
func (s *Server) AddUser() (mailserver.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nUsers++
	u := mailserver.User{Name: fmt.Sprintf("user%d", s.nUsers), Password: fmt.Sprintf("pw-%d-%s", s.nUsers, filepath.Base(s.dir))}
	// SHA-512 crypt, what Debian's passwd writes; Go has no crypt(3).
	cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
	cmd.Stdin = strings.NewReader(u.Password + "\n")
	hash, err := cmd.Output()
	if err != nil {
		return u, fmt.Errorf("popa3d: openssl passwd: %w", err)
	}
	if err := appendLine(filepath.Join(s.dir, "passwd"), fmt.Sprintf("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin", u.Name, mailUID, mailUID)); err != nil {
		return u, err
	}
	if err := appendLine(filepath.Join(s.dir, "shadow"), fmt.Sprintf("%s:%s:19000:0:99999:7:::", u.Name, bytes.TrimSpace(hash))); err != nil {
		return u, err
	}
	box := filepath.Join(s.dir, "mail", u.Name)
	if err := os.WriteFile(box, nil, 0o600); err != nil {
		return u, err
	}
	return u, os.Chown(box, mailUID, mailUID)
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Main is for TestMain: it starts one popa3d for the package's tests, runs
// them and stops it. A popa3d that cannot start is reported loudly and its
// error left in *err for mailserver.Need to fail or skip each test.
func Main(m *testing.M, srv **Server, err *error) int {
	s, e := Start()
	if e != nil {
		*err = e
		mailserver.Skipped("popa3d", e)
		return m.Run()
	}
	*srv = s
	defer s.Stop()
	return m.Run()
}

// Seed appends msgs to u's /var/mail mailbox, each as a mail delivery agent
// writes it: a From_ line (its date one second after the previous
// message's), the message with LF line ends, and an empty line.
//
// What popa3d 1.0.3 does with such a mailbox, measured: a "From " line
// starts a message only after an empty line (or at the top); the empty line
// before it, and one at the end of the file, are not part of the message;
// ">From " lines are served as they are (no mboxrd unquoting), dot lines are
// dot-stuffed on the wire, and LF is served as CRLF (so a CRLF in the file
// would be served as CR CR LF); a message with no empty line after its
// header gets one added. So RETR returns exactly the seeded message,
// written with CRLF, when it ends with a line end; Seed adds a missing one
// and refuses the two kinds popa3d cannot serve unchanged: a "From " line
// after an empty line (which would split the message) and a message with no
// empty line ending its header.
func (s *Server) Seed(u mailserver.User, msgs [][]byte) error {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s.mu.Lock()
	first := s.seeded
	s.seeded += len(msgs)
	s.mu.Unlock()
	var box bytes.Buffer
	for i, m := range msgs {
		m = lf(m)
		if err := servable(m); err != nil {
			return fmt.Errorf("popa3dtest: message %d %v", i, err)
		}
		t := base.Add(time.Duration(first+i) * time.Second)
		fmt.Fprintf(&box, "From mailmove@example.test %s\n", t.Format("Mon Jan _2 15:04:05 2006"))
		box.Write(m)
		box.WriteByte('\n')
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "mail", u.Name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(box.Bytes()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// lf is a message as the mbox keeps it: LF line ends, and a final one.
func lf(m []byte) []byte {
	m = bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n"))
	if len(m) > 0 && m[len(m)-1] != '\n' {
		m = append(m, '\n')
	}
	return m
}

func servable(m []byte) error {
	if bytes.HasPrefix(m, []byte("From ")) || bytes.Contains(m, []byte("\n\nFrom ")) {
		return errors.New("has a \"From \" line after an empty line: popa3d would serve it as two messages")
	}
	if !bytes.HasPrefix(m, []byte("\n")) && !bytes.Contains(m, []byte("\n\n")) {
		return errors.New("has no empty line after its header: popa3d would add one")
	}
	return nil
}

// Servable reports whether popa3d can serve msg as it is: its mbox, which
// it does not quote, cannot hold a "From " line after an empty line, and it
// adds an empty line to a message that has none after its header (a CR CR
// LF message has none it sees).
func Servable(msg []byte) bool { return servable(lf(msg)) == nil }
