package childserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBinaryMissing(t *testing.T) {
	t.Setenv("MAILMOVE_SERVERS_DIR", t.TempDir())
	_, err := Binary("maddy")
	if !errors.Is(err, ErrNotBuilt) || !strings.Contains(err.Error(), BuildScript) {
		t.Errorf("Binary = %v, want ErrNotBuilt naming %s", err, BuildScript)
	}
}

func TestBinaryAndStamp(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MAILMOVE_SERVERS_DIR", dir)
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	p := filepath.Join(dir, "bin", "mox")
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", ".mox.stamp"), []byte("mox v0.0.17 go1.26.8\n"), 0o644)
	got, err := Binary("mox")
	if err != nil || got != p {
		t.Fatalf("Binary = %q, %v", got, err)
	}
	if s := Stamp(got); s != "mox v0.0.17 go1.26.8" {
		t.Errorf("Stamp = %q", s)
	}
}

// A server that dies at start-up is reported with its output.
func TestExitShowsLog(t *testing.T) {
	dir := t.TempDir()
	p, err := Start("fake", filepath.Join(dir, "log"), exec.Command("sh", "-c", "echo config error: no such thing; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	ports, _ := FreePorts(1)
	err = p.WaitReady(10*time.Second, Listening(Addr(ports[0])))
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") || !strings.Contains(err.Error(), "config error: no such thing") {
		t.Errorf("WaitReady = %v, want the exit and the log", err)
	}
}

func TestTimeoutShowsLog(t *testing.T) {
	dir := t.TempDir()
	p, err := Start("fake", filepath.Join(dir, "log"), exec.Command("sh", "-c", "echo starting; exec sleep 60"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	ports, _ := FreePorts(1)
	err = p.WaitReady(300*time.Millisecond, Listening(Addr(ports[0])))
	if err == nil || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), "starting") {
		t.Errorf("WaitReady = %v, want a time-out with the log", err)
	}
}

// Stop ends the child's children too: no server process is left behind.
func TestStopKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	p, err := Start("fake", filepath.Join(dir, "log"), exec.Command("sh", "-c", "sleep 60 & echo $! > "+pidFile+"; wait"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	err = p.WaitReady(10*time.Second, Check{What: "pid file", Try: func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return errors.New("no pid yet")
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	p.Stop()
	// The grandchild was reparented; once killed it is gone or a zombie
	// that its new parent reaps. Signal 0 fails only once it is reaped, so
	// look at its state instead.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d still running after Stop: %s", pid, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNamed(t *testing.T) {
	for _, c := range []struct {
		list string
		want bool
	}{{"", false}, {"mox", true}, {"dovecot,mox", true}, {"maddy mox", true}, {"all", true}, {"moxx", false}} {
		if got := named(c.list, "mox"); got != c.want {
			t.Errorf("named(%q, mox) = %v", c.list, got)
		}
	}
}
