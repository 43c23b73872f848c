package childserver

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own (so killGroup
// reaches what it forks) and asks the kernel to kill it when the thread
// that started it dies, so a test binary killed by its timeout leaves no
// server behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(cmd *exec.Cmd) {
	// The group's id is the child's pid (Setpgid with Pgid 0).
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Process.Kill()
}
