package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/mailmove/mailmove/internal/mailgen"
)

func TestShardsCoverEveryLineOnce(t *testing.T) {
	var jobs []Job
	for i := 0; i < 13; i++ {
		jobs = append(jobs, Job{Line: i + 2})
	}
	for n := 1; n <= 6; n++ {
		seen := map[int]int{}
		for k := 1; k <= n; k++ {
			for _, j := range shardOf(jobs, k, n) {
				seen[j.Line]++
			}
		}
		for _, j := range jobs {
			if seen[j.Line] != 1 {
				t.Fatalf("N=%d: line %d in %d shards", n, j.Line, seen[j.Line])
			}
		}
	}
	for _, bad := range []string{"0/3", "4/3", "x", "1/0", "2"} {
		if _, _, err := parseShard(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestBatch migrates several mailboxes, one with a wrong password, is
// interrupted, resumed, and run a third time: every mailbox ends exactly
// once at its destination, the bad one is reported and stops nothing, and
// finished mailboxes are not touched again.
func TestBatch(t *testing.T) {
	dir := t.TempDir()
	var pairs []*pair
	var csv strings.Builder
	csv.WriteString("from,to,from_password,to_password,options\n# one mailbox per line\n")
	for i := 0; i < 4; i++ {
		msgs := mailgen.Mailbox(mailgen.Options{Seed: uint64(110 + i), Count: 300, MaxAttach: 20 << 10})
		p := newPair(t, msgs)
		pairs = append(pairs, p)
		srcPass := filepath.Join(dir, fmt.Sprintf("src%d.pass", i))
		dstPass := filepath.Join(dir, fmt.Sprintf("dst%d.pass", i))
		pw := p.src.Password
		if i == 2 {
			pw = "wrong"
		}
		os.WriteFile(srcPass, []byte(pw+"\n"), 0o600)
		os.WriteFile(dstPass, []byte(p.dst.Password+"\n"), 0o600)
		// --rate: the first run is still copying when it is interrupted.
		fmt.Fprintf(&csv, "pop3s://%s@%s,imaps://%s@%s,file:%s,file:%s,--ca-file %s --rate 200\n",
			p.src.Name, p.srv.POP3S, p.dst.Name, p.srv.IMAPS, srcPass, dstPass, p.srv.CAFile)
	}
	file := filepath.Join(dir, "jobs.csv")
	os.WriteFile(file, []byte(csv.String()), 0o600)
	report := filepath.Join(dir, "batch.json")
	batchRun := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "batch", file, "--jobs", "2", "--max-connections", "2", "--report", report)
		cmd.Env = append(os.Environ(), "MAILMOVE_AS_MAIN=1")
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	exit := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}

	cmd, out := batchRun()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Interrupted once the first mailbox is being copied: an event.
	waitUntil(t, exited, "the first mailbox being copied", func() bool { return pairs[0].count(t, pairs[0].dst, "INBOX") >= 20 })
	cmd.Process.Signal(syscall.SIGINT)
	if code := exit(<-exited); code != exitInterrupted {
		t.Fatalf("first batch: exit %d, want %d (interrupted)\n%s", code, exitInterrupted, out.String())
	}
	if n := pairs[0].count(t, pairs[0].dst, "INBOX"); n >= distinct(pairs[0].msgs) {
		t.Fatalf("the first mailbox was done before the interrupt (%d): the test would prove nothing", n)
	}

	cmd, out = batchRun()
	if code := exit(cmd.Wait()); code != exitIncomplete || !strings.Contains(out.String(), "refused the login") {
		t.Fatalf("resumed batch: exit %d\n%s", code, out.String())
	}
	for i, p := range pairs {
		got := p.fetchAll(t, p.dst, "INBOX")
		if i == 2 {
			if len(got) != 0 {
				t.Fatalf("the mailbox with a wrong password copied %d", len(got))
			}
			continue
		}
		checkExactlyOnce(t, p.msgs, got)
	}
	var rep struct{ Mailboxes []JobResult }
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Mailboxes) != 4 || rep.Mailboxes[2].Exit != exitAuth {
		t.Fatalf("report: %v %+v", err, rep.Mailboxes)
	}

	cmd, out = batchRun()
	exit(cmd.Wait())
	rows := regexp.MustCompile(`(?m)^\d+ +\S.* ok +0 +0 +done by an earlier run: not touched$`)
	if n := len(rows.FindAllString(out.String(), -1)); n != 3 {
		t.Fatalf("third run: %d mailboxes left alone, want 3\n%s", n, out.String())
	}
}

func TestReadJobs(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "jobs.csv")
	os.WriteFile(csv, []byte("from,to,to_password\n# comment\npop3s://a@h,imaps://a@i,command:pass show a\n\n"), 0o600)
	jobs, err := readJobs(csv)
	if err != nil || len(jobs) != 1 || jobs[0].ToPassSrc != "command:pass show a" || jobs[0].Line != 3 {
		t.Fatalf("%+v %v", jobs, err)
	}
	os.WriteFile(csv, []byte("from,to,to_password\npop3s://a@h,imaps://a@i,hunter2\n"), 0o600)
	if _, err := readJobs(csv); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a password in the batch file: %v", err)
	}
	tomlFile := filepath.Join(dir, "jobs.toml")
	os.WriteFile(tomlFile, []byte("[[jobs]]\nfrom = \"mbox:/x\"\nto = \"imaps://b@i\"\nto_password = \"file:/p\"\noptions = [\"--folder\", \"Old\"]\n"), 0o600)
	jobs, err = readJobs(tomlFile)
	if err != nil || len(jobs) != 1 || jobs[0].Options[1] != "Old" || jobs[0].From != "mbox:/x" {
		t.Fatalf("%+v %v", jobs, err)
	}
}
