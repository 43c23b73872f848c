// Package childserver is what the harnesses of mail servers run as child
// processes share: finding a binary that build-goservers.sh built, free ports
// on 127.0.0.1, a child with its output in a log file, readiness by polling
// its ports, a teardown that leaves no process behind, and seeding a mailbox
// over IMAP for servers that have no faster way in.
package childserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailserver"
)

// DefaultDir is where build-goservers.sh puts its scratch modules and, in
// bin/, the binaries; MAILMOVE_SERVERS_DIR overrides it for both.
const DefaultDir = "/var/cache/mailmove-servers"

// BuildScript is the script that builds the binaries, relative to the
// repository root; errors name it so that a missing binary says what to do.
const BuildScript = "internal/mailserver/build-goservers.sh"

// Binary returns the path of the server binary name (maddy, mox) built by
// build-goservers.sh, or an error that says how to build it.
func Binary(name string) (string, error) {
	dir := os.Getenv("MAILMOVE_SERVERS_DIR")
	if dir == "" {
		dir = DefaultDir
	}
	p := filepath.Join(dir, "bin", name)
	fi, err := os.Stat(p)
	if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p, nil
	}
	return "", fmt.Errorf("%s %w: %s does not exist or is not executable; run `make goservers` (%s) first", name, ErrNotBuilt, p, BuildScript)
}

// ErrNotBuilt is in the error of Binary (and so of a harness's Start) when
// the binary has not been built.
var ErrNotBuilt = errors.New("is not built")

// Need is mailserver.Need for a server built by build-goservers.sh, with one
// difference: a server that was never built is skipped even under CI=true,
// unless MAILMOVE_REQUIRE_SERVERS names it (or says "all"). make test does
// not build maddy and mox (a cold build takes minutes), so its CI run must
// not fail for their absence; `make goservers` builds them, and from then on
// a server that does not start fails the run under CI=true as any other.
func Need[S mailserver.Server](t testing.TB, name string, s S, err error) S {
	t.Helper()
	if errors.Is(err, ErrNotBuilt) && !named(os.Getenv("MAILMOVE_REQUIRE_SERVERS"), name) {
		t.Skipf("%s is not available: %v", name, err)
	}
	return mailserver.Need(t, name, s, err)
}

// named reports whether the comma- or space-separated list names name or
// says "all", as mailserver.Required reads MAILMOVE_REQUIRE_SERVERS.
func named(list, name string) bool {
	for _, w := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		if w == name || w == "all" {
			return true
		}
	}
	return false
}

// Stamp returns what build-goservers.sh recorded as having built the binary
// at path ("maddy v0.8.1 go1.26.8 cgo"), or "" when it left no stamp.
func Stamp(path string) string {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".stamp"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago. Another process may take one before the server binds it;
// Start's callers retry on "address already in use" (see AddrInUse).
func FreePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Addr is "127.0.0.1:port".
func Addr(port int) string {
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
}

// Proc is a server running as a child process in its own process group,
// its standard output and error in a log file.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	stop    sync.Once
}

// Start starts cmd with its output appended to logPath. The child gets its
// own process group, so Stop also ends whatever it forks, and (on Linux) is
// killed by the kernel if the test binary dies first without calling Stop,
// e.g. on a test timeout.
func Start(name, logPath string, cmd *exec.Cmd) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// A file, not a pipe: nothing has to drain it, and a child that forks
	// cannot keep Wait from returning by holding a pipe open.
	cmd.Stdout, cmd.Stderr = f, f
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// Log returns the child's output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Exited is closed when the child has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// WaitReady polls until every check succeeds (each is tried until it does,
// in order), the child exits, or timeout passes. Polling, not a fixed sleep:
// start-up takes 50 ms on a quiet machine and seconds on a loaded CI one.
func (p *Proc) WaitReady(timeout time.Duration, checks ...Check) error {
	deadline := time.Now().Add(timeout)
	for _, c := range checks {
		for {
			err := c.Try()
			if err == nil {
				break
			}
			select {
			case <-p.exited:
				return fmt.Errorf("%s exited during start-up (%v); its log:\n%s", p.name, p.cmd.ProcessState, p.Log())
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v: %s: %v; its log:\n%s", p.name, timeout, c.What, err, p.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Check is one readiness probe of WaitReady.
type Check struct {
	What string
	Try  func() error
}

// Listening is a Check that the server accepts TCP connections on addr.
func Listening(addr string) Check {
	return dialCheck("tcp", addr)
}

// UnixListening is a Check that the server accepts connections on the Unix
// socket at path.
func UnixListening(path string) Check {
	return dialCheck("unix", path)
}

// Logged is a Check that the child's log contains s: a server that logs
// after each bind proves with it that the port is its own, which a dial
// cannot (another process may hold a port that FreePorts handed out twice).
func (p *Proc) Logged(s string) Check {
	return Check{What: "log line " + strconv.Quote(s), Try: func() error {
		if !strings.Contains(p.Log(), s) {
			return errors.New("not logged yet")
		}
		return nil
	}}
}

func dialCheck(network, addr string) Check {
	return Check{What: "listening on " + addr, Try: func() error {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}}
}

// Stop kills the child's process group and waits for the child to be gone.
// No graceful shutdown: the state is thrown away anyway, and mox on SIGTERM
// waits up to 3 s for its connections. Safe to call more than once.
func (p *Proc) Stop() {
	p.stop.Do(func() {
		killGroup(p.cmd)
		<-p.exited
	})
}

// AddrInUse reports whether a server's log says a port was taken between
// FreePorts and its bind, which is worth one more try on other ports.
func AddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}
