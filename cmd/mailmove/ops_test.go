package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailgen"
)

// TestStatus asks `mailmove status` during a real migration (the state is
// locked: the status file answers) and after it (the state answers).
func TestStatus(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 101, Count: 1200, MaxAttach: 20 << 10})
	p := newPair(t, msgs)
	status := func() string {
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, command: "status"}
		if err := m.ParseFlags([]string{"--state", p.state}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Run(t.Context()); err != nil {
			t.Fatalf("status: %v\n%s", err, out.String())
		}
		return out.String()
	}
	if out := status(); !strings.Contains(out, "no migration yet") {
		t.Fatalf("before: %s", out)
	}
	cmd, _ := p.startProcess(t)
	var during string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if during = status(); strings.Contains(during, "INBOX") && strings.Contains(during, "copied") {
			break
		}
	}
	if !strings.Contains(during, "running since") || !strings.Contains(during, "progress:") {
		t.Fatalf("during the run:\n%s", during)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	after := status()
	if !strings.Contains(after, "not running") || !strings.Contains(after, "INBOX") ||
		!strings.Contains(after, fmt.Sprintf("copied %d", len(msgs))) || !strings.Contains(after, "finished at") {
		t.Fatalf("after the run:\n%s", after)
	}
}

