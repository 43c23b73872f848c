// Package srvproc runs a mail server unpacked from its Debian package (see
// internal/mailserver/install-servers.sh) as a child process for tests.
//
// The child runs in private mount and PID namespaces. The mount namespace
// lets a server find its configuration at the paths compiled into it
// (/etc/courier, /var/mail, /etc/passwd, /dev/log) while the files are the
// test's own: the host's /etc is never written. The PID namespace makes
// stopping total: when the child, its init, dies, the kernel kills every
// process the server forked, whatever session or process group they moved
// to, and Wait returns only once they are gone (pid_namespaces(7)).
package srvproc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Root is where install-servers.sh unpacked the Debian packages.
func Root() string {
	dir := os.Getenv("MAILMOVE_SERVERS_DIR")
	if dir == "" {
		dir = "/var/cache/mailmove-servers"
	}
	return filepath.Join(dir, "root")
}

// Check returns an error that says how to install the servers when the
// unpacked tree lacks one of files (paths relative to Root), or when the
// process is not root (namespaces and servers that drop privileges need it).
func Check(files ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (mount namespaces, privilege-dropping servers)")
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(Root(), f)); err != nil {
			return fmt.Errorf("%s is missing: run internal/mailserver/install-servers.sh as root (make servers)", filepath.Join(Root(), f))
		}
	}
	return nil
}

// LibraryPath is an LD_LIBRARY_PATH entry for the unpacked packages'
// private libraries (libcyrus*.so, libcourierauth*.so).
func LibraryPath() string {
	r := Root()
	return "LD_LIBRARY_PATH=" + filepath.Join(r, "usr/lib/x86_64-linux-gnu") + ":" + filepath.Join(r, "usr/lib")
}

// Mounts says what the child sees in place of some paths.
type Mounts struct {
	Scratch string // a directory of the test's for the overlay layers
	repl    map[string]string
}

// Replace makes path show src (a file or directory) inside the namespace.
// An existing path is bind-mounted over. A path that does not exist on the
// host (/etc/courier) is added as a symlink to src by a read-only overlay on
// its parent directory, with the host's directory as the lower layer:
// nothing is created on the host.
func (m *Mounts) Replace(path, src string) {
	if m.repl == nil {
		m.repl = map[string]string{}
	}
	m.repl[filepath.Clean(path)] = src
}

// script returns the shell commands that set up the mounts.
func (m *Mounts) script() (string, error) {
	var b strings.Builder
	// Mount events must not propagate to the host's shared mounts.
	b.WriteString("set -e\nmount --make-rprivate /\n")
	paths := make([]string, 0, len(m.repl))
	for p := range m.repl {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	layers := map[string]string{} // parent directory -> layer directory
	var parents []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		parent := filepath.Dir(p)
		if _, err := os.Stat(parent); err != nil {
			return "", fmt.Errorf("cannot add %s: its parent does not exist on this machine", p)
		}
		layer, ok := layers[parent]
		if !ok {
			layer = filepath.Join(m.Scratch, "layer"+strings.ReplaceAll(parent, "/", "_"))
			if err := os.MkdirAll(layer, 0o755); err != nil {
				return "", err
			}
			layers[parent] = layer
			parents = append(parents, parent)
		}
		link := filepath.Join(layer, filepath.Base(p))
		os.Remove(link)
		if err := os.Symlink(m.repl[p], link); err != nil {
			return "", err
		}
	}
	for _, parent := range parents {
		fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=%s:%s %s\n", quote(layers[parent]), quote(parent), quote(parent))
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			fmt.Fprintf(&b, "mount --bind %s %s\n", quote(m.repl[p]), quote(p))
		}
	}
	return b.String(), nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Proc is a server running in its own namespaces.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	outPath string
	err     error // from Wait, once exited is closed
}

// Command returns a command that runs the shell script sh (with "$@" the
// args) in namespaces with m's mounts. The script should end with exec.
func Command(m *Mounts, sh string, args ...string) (*exec.Cmd, error) {
	setup, err := m.script()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", setup + sh, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		// A test binary that dies (panic, timeout) takes the server along.
		Pdeathsig: syscall.SIGKILL,
	}
	return cmd, nil
}

// Start starts cmd (from Command) with its standard output and error in the
// file out.
func Start(name string, cmd *exec.Cmd, out string) (*Proc, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s did not start: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, exited: make(chan struct{}), outPath: out}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// Output is what the process wrote so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.outPath)
	return string(b)
}

// WaitListening polls addrs until each accepts a connection. It fails when
// the process exits first or timeout passes; log (may be nil) adds the
// server's own log to the error.
func (p *Proc) WaitListening(addrs []string, timeout time.Duration, log func() string) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.exited:
				return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", p.name, p.err, a, p.logs(log))
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s is not listening on %s after %v:\n%s", p.name, a, timeout, p.logs(log))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func (p *Proc) logs(log func() string) string {
	s := p.Output()
	if log != nil {
		s += log()
	}
	return s
}

// Stop kills the server and everything it started, and waits for them.
func (p *Proc) Stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// FreePorts returns n ports of 127.0.0.1 that were free a moment ago.
func FreePorts(n int) ([]int, error) {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Addr is "127.0.0.1:port".
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Syslog collects what a server sends to syslog(3): Cyrus and popa3d log
// nowhere else. Replace /dev/log with Path in the server's Mounts.
type Syslog struct {
	Path string
	conn *net.UnixConn
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

// ListenSyslog listens on the datagram socket path. Services that dropped
// privileges must be able to write to it, so it is world-writable.
func ListenSyslog(path string) (*Syslog, error) {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		c.Close()
		return nil, err
	}
	s := &Syslog{Path: path, conn: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		b := make([]byte, 64<<10)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.buf.Write(bytes.TrimRight(b[:n], "\x00\n"))
			s.buf.WriteByte('\n')
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// String is the log so far, one message a line.
func (s *Syslog) String() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Close stops listening.
func (s *Syslog) Close() {
	if s == nil {
		return
	}
	s.conn.Close()
	<-s.done
}
