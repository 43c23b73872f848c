package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/internal/faultproxy"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate/mbox"
)

// benchMailbox is the deterministic mailbox of the throughput benchmarks:
// 1,000 messages, most of 2 to 20 KB, a tail of large attachments.
func benchMailbox() [][]byte {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 700, Count: 990, MaxAttach: 18 << 10})
	return append(msgs, mailgen.Mailbox(mailgen.Options{Seed: 701, Count: 10, MaxAttach: 25 << 20})...)
}

func totalSize(msgs [][]byte) int64 {
	n := int64(0)
	for _, m := range msgs {
		n += int64(len(m))
	}
	return n
}

// writeMaildir puts msgs in a Maildir readable by Dovecot's user.
func writeMaildir(b *testing.B, dir string, msgs [][]byte) {
	for _, d := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	for i, m := range msgs {
		os.WriteFile(filepath.Join(dir, "cur", fmt.Sprintf("%d.M%d.bench:2,S", 1700000000+i, i)), m, 0o644)
	}
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { os.Chown(p, 1000, 1000); return nil })
	os.Chmod(filepath.Dir(dir), 0o755)
}

// measure runs a command and returns its wall time and peak RSS. The peak
// is read from /proc while it runs (VmHWM): getrusage's figure for a child
// starts from the parent's size at fork, here the benchmark's own.
func measure(b *testing.B, cmd *exec.Cmd) (time.Duration, int64) {
	b.Helper()
	busy0 := busyCPU()
	defer func() { b.ReportMetric(busyCPU()-busy0, "machine-cpu-s") }()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	peak := int64(0)
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for {
		if data, err := os.ReadFile(status); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					var kb int64
					fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
					peak = max(peak, kb<<10)
				}
			}
		}
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("%s: %v\n%s", cmd.Path, err, out.String())
			}
			return time.Since(start), peak
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countINBOX asks Dovecot how many messages a user's INBOX holds.
func countINBOX(b *testing.B, srv *dovecottest.Server, u dovecottest.User) int {
	out, err := srv.Doveadm("mailbox", "status", "-u", u.Name, "messages", "INBOX").CombinedOutput()
	if err != nil {
		b.Fatalf("doveadm mailbox status: %v %s", err, out)
	}
	_, v, _ := strings.Cut(string(out), "messages=")
	var n int
	fmt.Sscan(v, &n)
	return n
}

func reportRun(b *testing.B, msgs [][]byte, took time.Duration, rss int64) {
	b.ReportMetric(float64(len(msgs))/took.Seconds(), "msgs/s")
	b.ReportMetric(float64(totalSize(msgs))/(1<<20)/took.Seconds(), "MB/s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	b.ReportMetric(took.Seconds(), "s/run")
}

// BenchmarkMigrate measures mailmove (POP3 → IMAP and mbox → IMAP) against
// the server's own floor (doveadm import of the same messages from a local
// Maildir) and mbsync pushing them from a local Maildir, at 0 and 40 ms of
// round trip through the same in-process proxy. `make bench` runs it; it
// needs Dovecot, and mbsync (Debian isync) for its rows.
func BenchmarkMigrate(b *testing.B) {
	srv := dovecottest.Need(b, dovecot)
	msgs := benchMailbox()
	b.Logf("%d messages, %.1f MB", len(msgs), float64(totalSize(msgs))/(1<<20))
	// Not b.TempDir: its parent is owner-only, and doveadm reads the Maildir
	// as Dovecot's user.
	dir, err := os.MkdirTemp("", "mailmove-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	maildir := filepath.Join(dir, "Maildir")
	writeMaildir(b, maildir, msgs)
	mboxPath := filepath.Join(dir, "Inbox")
	f, _ := os.Create(mboxPath)
	w := mbox.NewWriter(f)
	for _, m := range msgs {
		w.Write(mbox.FromLine("-", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), m)
	}
	w.Flush()
	f.Close()
	src, err := srv.AddUser()
	if err != nil {
		b.Fatal(err)
	}
	if err = srv.Seed(src, msgs); err != nil {
		b.Fatal(err)
	}

	b.Run("doveadm-import", func(b *testing.B) {
		for b.Loop() {
			dst, err := srv.AddUser()
			if err != nil {
				b.Fatal(err)
			}
			took, rss := measure(b, srv.Doveadm("import", "-u", dst.Name, "maildir:"+maildir, "", "all"))
			if n := countINBOX(b, srv, dst); n != len(msgs) {
				b.Fatalf("doveadm imported %d of %d", n, len(msgs))
			}
			reportRun(b, msgs, took, rss)
		}
	})
	for _, rtt := range []time.Duration{0, 40 * time.Millisecond} {
		name := fmt.Sprintf("%dms", rtt.Milliseconds())
		for _, transport := range []string{"tls", "plain"} {
			for _, from := range []string{"pop3", "mbox"} {
				b.Run("mailmove-"+from+"-"+transport+"-"+name, func(b *testing.B) {
					for b.Loop() {
						dst, err := srv.AddUser()
						if err != nil {
							b.Fatal(err)
						}
						took, rss := benchMailmove(b, srv, src, dst, from, transport, mboxPath, rtt)
						if n := countINBOX(b, srv, dst); n != len(msgs) {
							b.Fatalf("mailmove delivered %d of %d", n, len(msgs))
						}
						reportRun(b, msgs, took, rss)
					}
				})
			}
		}
		b.Run("mbsync-maildir-"+name, func(b *testing.B) {
			bin, err := exec.LookPath("mbsync")
			if err != nil {
				b.Skip("mbsync is not installed (apt-get install isync)")
			}
			for b.Loop() {
				dst, err := srv.AddUser()
				if err != nil {
					b.Fatal(err)
				}
				im, _ := faultproxy.Start(srv.IMAP)
				im.Always(faultproxy.Fault{Latency: rtt / 2})
				host, port, _ := strings.Cut(im.Addr(), ":")
				home := b.TempDir()
				local := filepath.Join(home, "mail")
				writeMaildir(b, filepath.Join(local, "INBOX"), msgs)
				conf := filepath.Join(home, "mbsyncrc")
				os.WriteFile(conf, []byte(fmt.Sprintf(`IMAPAccount dst
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore far
Account dst

MaildirStore near
Path %s/
Inbox %s/INBOX

Channel push
Far :far:
Near :near:
Patterns INBOX
Create Far
Sync Push
`, host, port, dst.Name, dst.Password, local, local)), 0o600)
				cmd := exec.Command(bin, "-c", conf, "-a")
				cmd.Env = append(os.Environ(), "HOME="+home)
				took, rss := measure(b, cmd)
				im.Close()
				if n := countINBOX(b, srv, dst); n != len(msgs) {
					b.Fatalf("mbsync delivered %d of %d", n, len(msgs))
				}
				reportRun(b, msgs, took, rss)
			}
		})
	}
}

// benchMailmove runs mailmove as its own process from src's POP3 mailbox (or
// the mbox file) to dst, through latency proxies of round trip rtt, over TLS
// or, as mbsync is run, in plaintext. BENCH_ARGS adds flags, to compare.
func benchMailmove(b *testing.B, srv *dovecottest.Server, src, dst dovecottest.User, from, transport, mboxPath string, rtt time.Duration) (time.Duration, int64) {
	popAddr, imapAddr := srv.POP3S, srv.IMAPS
	if transport == "plain" {
		popAddr, imapAddr = srv.POP3, srv.IMAP
	}
	pop, _ := faultproxy.Start(popAddr)
	im, _ := faultproxy.Start(imapAddr)
	defer pop.Close()
	defer im.Close()
	pop.Always(faultproxy.Fault{Latency: rtt / 2})
	im.Always(faultproxy.Fault{Latency: rtt / 2})
	args := []string{"--ca-file", srv.CAFile, "--state", filepath.Join(b.TempDir(), "state.db"), "--quiet", "--spam", "ignore"}
	fromArg, toArg := "pop3s://"+src.Name+"@"+pop.Addr(), "imaps://"+dst.Name+"@"+im.Addr()
	if transport == "plain" {
		cfg := filepath.Join(b.TempDir(), "config.toml")
		endpoint := func(name, typ, addr, user string) string {
			host, port, _ := strings.Cut(addr, ":")
			return fmt.Sprintf("[endpoints.%s]\ntype = %q\nhost = %q\nport = %s\nuser = %q\ntls = \"none\"\n", name, typ, host, port, user)
		}
		os.WriteFile(cfg, []byte(endpoint("src", "pop3", pop.Addr(), src.Name)+endpoint("dst", "imap", im.Addr(), dst.Name)), 0o600)
		fromArg, toArg = "src", "dst"
		args = append(args, "--config", cfg, "--allow-plaintext")
	}
	if from == "mbox" {
		fromArg = "mbox:" + mboxPath
	}
	args = append(append(args, "--from", fromArg, "--to", toArg), strings.Fields(os.Getenv("BENCH_ARGS"))...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAILMOVE_AS_MAIN=1", "MAILMOVE_FROM_PASSWORD="+src.Password, "MAILMOVE_TO_PASSWORD="+dst.Password)
	return measure(b, cmd)
}

// busyCPU is the machine's CPU time spent so far, all processes together
// (mailmove, Dovecot, the proxies), in seconds: /proc/stat's first line
// less idle and iowait, in USER_HZ (100 per second on Linux).
func busyCPU() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	total := 0.0
	for i, v := range f[1:] {
		var n float64
		fmt.Sscan(v, &n)
		if i != 3 && i != 4 { // idle, iowait
			total += n
		}
	}
	return total / 100
}
