package srvproc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNamespace: a path that does not exist on the host appears inside,
// an existing one is replaced, the host sees neither; and Stop ends a
// process that left the session and process group of the server.
func TestNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	added := "/etc/mailmove-srvproc-test"
	if _, err := os.Lstat(added); err == nil {
		t.Fatalf("%s exists on the host", added)
	}
	os.WriteFile(filepath.Join(dir, "added"), []byte("added\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "hostname"), []byte("replaced\n"), 0o644)
	m := &Mounts{Scratch: dir}
	m.Replace(added, filepath.Join(dir, "added"))
	m.Replace("/etc/hostname", filepath.Join(dir, "hostname"))
	// The escaped process writes its host pid: /proc is still the host's,
	// so the shell's own /proc/self/stat names it as the host knows it.
	pidFile := filepath.Join(dir, "pid")
	cmd, err := Command(m, `cat "$1" /etc/hostname
setsid sh -c 'read -r pid _ </proc/self/stat; echo $pid >"$0.tmp"; mv "$0.tmp" "$0"; exec sleep 600' "$2" &
exec sleep 600`, added, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start("test", cmd, filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(5 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			p.Stop()
			t.Fatalf("no pid written: %s", p.Output())
		}
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		t.Fatalf("the escaped process %d is not running: %v", pid, err)
	}
	p.Stop()
	if got := p.Output(); got != "added\nreplaced\n" {
		t.Errorf("inside the namespace: %q", got)
	}
	if _, err := os.Lstat(added); err == nil {
		t.Errorf("%s appeared on the host", added)
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && len(b) > 0 {
		t.Errorf("process %d (%q) outlived Stop", pid, b)
	}
}
