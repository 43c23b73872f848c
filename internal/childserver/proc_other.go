//go:build !linux

package childserver

import "os/exec"

// Elsewhere than Linux the harnesses are untried: the child alone is
// killed, without a process group or parent-death signal.
func setProcAttr(cmd *exec.Cmd) {}

func killGroup(cmd *exec.Cmd) { cmd.Process.Kill() }
