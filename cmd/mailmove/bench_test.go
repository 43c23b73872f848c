package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/internal/faultproxy"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/internal/memimap"
	"github.com/mailmove/mailmove/migrate/mbox"
	"github.com/mailmove/mailmove/migrate/pop3/pop3test"
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

// measure runs a command and returns its wall time, its peak RSS and its
// peak anonymous memory (the heap, apart from the pages of mapped files such
// as the state database). The peak is read from /proc while it runs (VmHWM,
// and RssAnon every 20 ms): getrusage's figure for a child starts from the
// parent's size at fork, here the benchmark's own.
func measure(b *testing.B, cmd *exec.Cmd) (took time.Duration, peak, anon int64) {
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
	var file int64
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for {
		if data, err := os.ReadFile(status); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				name, v, _ := strings.Cut(line, ":")
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				switch name {
				case "VmHWM":
					peak = max(peak, kb<<10)
				case "RssAnon":
					anon = max(anon, kb<<10)
				case "RssFile":
					file = max(file, kb<<10)
				}
			}
		}
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("%s: %v\n%s", cmd.Path, err, out.String())
			}
			b.ReportMetric(float64(file)/(1<<20), "peak-file-MB")
			return time.Since(start), peak, anon
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

func reportRun(b *testing.B, msgs [][]byte, took time.Duration, rss, anon int64) {
	b.ReportMetric(float64(anon)/(1<<20), "peak-anon-MB")
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
			took, rss, anon := measure(b, srv.Doveadm("import", "-u", dst.Name, "maildir:"+maildir, "", "all"))
			if n := countINBOX(b, srv, dst); n != len(msgs) {
				b.Fatalf("doveadm imported %d of %d", n, len(msgs))
			}
			reportRun(b, msgs, took, rss, anon)
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
						took, rss, anon := benchMailmove(b, srv, src, dst, from, transport, mboxPath, rtt)
						if n := countINBOX(b, srv, dst); n != len(msgs) {
							b.Fatalf("mailmove delivered %d of %d", n, len(msgs))
						}
						reportRun(b, msgs, took, rss, anon)
					}
				})
			}
		}
		for _, transport := range []string{"plain", "tls"} {
			b.Run("mbsync-maildir-"+transport+"-"+name, func(b *testing.B) {
				bin, err := exec.LookPath("mbsync")
				if err != nil {
					b.Skip("mbsync is not installed (apt-get install isync)")
				}
				for b.Loop() {
					dst, err := srv.AddUser()
					if err != nil {
						b.Fatal(err)
					}
					target, ssl := srv.IMAP, "SSLType None"
					if transport == "tls" {
						target, ssl = srv.IMAPS, "SSLType IMAPS\nCertificateFile "+srv.CAFile
					}
					im, _ := faultproxy.Start(target)
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
%s
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
`, host, port, dst.Name, dst.Password, ssl, local, local)), 0o600)
					cmd := exec.Command(bin, "-c", conf, "-a")
					cmd.Env = append(os.Environ(), "HOME="+home)
					took, rss, anon := measure(b, cmd)
					im.Close()
					if n := countINBOX(b, srv, dst); n != len(msgs) {
						b.Fatalf("mbsync delivered %d of %d", n, len(msgs))
					}
					reportRun(b, msgs, took, rss, anon)
				}
			})
		}
	}
}

// benchMailmove runs mailmove as its own process from src's POP3 mailbox (or
// the mbox file) to dst, through latency proxies of round trip rtt, over TLS
// or, as mbsync is run, in plaintext. BENCH_ARGS adds flags, to compare.
func benchMailmove(b *testing.B, srv *dovecottest.Server, src, dst dovecottest.User, from, transport, mboxPath string, rtt time.Duration) (time.Duration, int64, int64) {
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
	args := []string{"--ca-file", srv.CAFile, "--state", filepath.Join(b.TempDir(), "state.db"),
		"--from", "pop3s://" + src.Name + "@" + pop.Addr(), "--to", "imaps://" + dst.Name + "@" + im.Addr()}
	if transport == "plain" {
		args = append(args[:4], plainEndpoints(b, pop.Addr(), src.Name, im.Addr(), dst.Name)...)
	}
	if from == "mbox" {
		args = append(args, "--from", "mbox:"+mboxPath) // the last --from wins
	}
	return measure(b, mailmoveCommand(b, src.Password, dst.Password, append(args, strings.Fields(os.Getenv("BENCH_ARGS"))...)...))
}

// mailmoveCommand is a mailmove run of the benchmarks, quiet and without
// spam routing: the real binary, or the test binary when a profile is asked
// for (MAILMOVE_CPUPROFILE, MAILMOVE_MEMPROFILE: see TestMain).
func mailmoveCommand(b *testing.B, fromPass, toPass string, args ...string) *exec.Cmd {
	bin := mailmoveBinary(b)
	if os.Getenv("MAILMOVE_MEMPROFILE")+os.Getenv("MAILMOVE_CPUPROFILE") != "" {
		bin = os.Args[0]
	}
	cmd := exec.Command(bin, append([]string{"--quiet", "--spam", "ignore"}, args...)...)
	cmd.Env = append(os.Environ(), "MAILMOVE_AS_MAIN=1", "MAILMOVE_FROM_PASSWORD="+fromPass, "MAILMOVE_TO_PASSWORD="+toPass)
	return cmd
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// mailmoveBinary builds the real mailmove binary once, so that its memory is
// measured, not the test binary's.
func mailmoveBinary(b *testing.B) string {
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailmove-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "mailmove")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		b.Fatal(binaryErr)
	}
	return binaryPath
}

// BenchmarkLargeMessages measures peak memory on a mailbox of 50 MB
// messages among small ones, POP3 → IMAP over TLS: big messages wait in
// spool files, not in memory.
func BenchmarkLargeMessages(b *testing.B) {
	srv := dovecottest.Need(b, dovecot)
	var msgs [][]byte
	small := mailgen.Mailbox(mailgen.Options{Seed: 801, Count: 60, MaxAttach: 16 << 10})
	for i := range 4 {
		msgs = append(msgs, small[i*15:(i+1)*15]...)
		msgs = append(msgs, bigMessage(i, 50<<20))
	}
	b.Logf("%d messages, %.1f MB", len(msgs), float64(totalSize(msgs))/(1<<20))
	src, err := srv.AddUser()
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Seed(src, msgs); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		dst, err := srv.AddUser()
		if err != nil {
			b.Fatal(err)
		}
		took, rss, anon := benchMailmove(b, srv, src, dst, "pop3", "tls", "", 0)
		if n := countINBOX(b, srv, dst); n != len(msgs) {
			b.Fatalf("mailmove delivered %d of %d", n, len(msgs))
		}
		reportRun(b, msgs, took, rss, anon)
	}
}

// bigMessage is a message of about size bytes: a base64 attachment.
func bigMessage(i, size int) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "From: a@example.org\nTo: b@example.org\nSubject: big %d\nMessage-ID: <big-%d@bench>\n"+
		"Date: Mon, 1 Jan 2024 10:00:00 +0000\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"+
		"--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: application/octet-stream\n"+
		"Content-Transfer-Encoding: base64\n\n", i, i)
	line := make([]byte, 57)
	enc := make([]byte, 76)
	for n := 0; buf.Len() < size; n++ {
		for j := range line {
			line[j] = byte(n*7 + j*13 + i)
		}
		base64.StdEncoding.Encode(enc, line)
		buf.Write(enc)
		buf.WriteByte('\n')
	}
	buf.WriteString("--b--\n")
	return buf.Bytes()
}

// BenchmarkScale measures mailmove's time per message at 1,000 and at
// 100,000 small messages, and a second run over the 100,000 already copied,
// which must decide "nothing to do" in seconds. Source and destination are
// in-process servers whose cost per message does not grow with the mailbox
// (pop3test, go-imap's memory server), in plaintext on loopback, so that
// what grows is mailmove's own (the state, the listing, the index). Dovecot
// cannot show that: its maildir costs more per message as a folder grows,
// whoever writes into it (BenchmarkScaleDovecot). BENCH_SCALE overrides the
// large count.
func BenchmarkScale(b *testing.B) {
	large := 100_000
	if v := os.Getenv("BENCH_SCALE"); v != "" {
		fmt.Sscan(v, &large)
	}
	all := mailgen.Mailbox(mailgen.Options{Seed: 900, Count: large, MaxAttach: 16 << 10})
	b.Logf("%d messages, %.1f MB", len(all), float64(totalSize(all))/(1<<20))
	for _, n := range []int{1000, large} {
		msgs := all[:n]
		pop := &pop3test.Server{User: "u@example.test", Pass: "pop-secret"}
		for i, m := range msgs {
			pop.Messages = append(pop.Messages, pop3test.Message{UID: fmt.Sprintf("m%06d", i), Data: m})
		}
		popAddr, err := pop.Start()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("copy-%d", n), func(b *testing.B) {
			for b.Loop() {
				imapAddr, count, stop, err := memimap.ServePlain("u@example.test", "imap-secret")
				if err != nil {
					b.Fatal(err)
				}
				state := filepath.Join(b.TempDir(), "state.db")
				run := func() (time.Duration, int64, int64) {
					return benchPlain(b, popAddr, imapAddr, "u@example.test", "pop-secret", "u@example.test", "imap-secret", state)
				}
				took, rss, anon := run()
				if got := count(); got != n {
					b.Fatalf("mailmove delivered %d of %d", got, n)
				}
				reportRun(b, msgs, took, rss, anon)
				b.ReportMetric(took.Seconds()*1e6/float64(n), "µs/msg")
				if n == large {
					took, rss, anon = run()
					b.ReportMetric(took.Seconds(), "resume-s")
					b.ReportMetric(float64(rss)/(1<<20), "resume-peak-RSS-MB")
					b.ReportMetric(float64(anon)/(1<<20), "resume-peak-anon-MB")
					if got := count(); got != n {
						b.Fatalf("after the resumed run: %d of %d", got, n)
					}
				}
				stop()
			}
		})
		pop.Close()
	}
}

// BenchmarkScaleDovecot is the same against the real Dovecot at 1,000 and
// BENCH_DOVECOT_SCALE (default 20,000) messages, with the server's own floor
// (doveadm import) at each size: the floor's time per message grows with
// the folder, and mailmove's follows it.
func BenchmarkScaleDovecot(b *testing.B) {
	srv := dovecottest.Need(b, dovecot)
	large := 20_000
	if v := os.Getenv("BENCH_DOVECOT_SCALE"); v != "" {
		fmt.Sscan(v, &large)
	}
	all := mailgen.Mailbox(mailgen.Options{Seed: 900, Count: large, MaxAttach: 16 << 10})
	for _, n := range []int{1000, large} {
		msgs := all[:n]
		src, err := srv.AddUser()
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Seed(src, msgs); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("copy-%d", n), func(b *testing.B) {
			for b.Loop() {
				dst, err := srv.AddUser()
				if err != nil {
					b.Fatal(err)
				}
				took, rss, anon := benchPlain(b, srv.POP3, srv.IMAP, src.Name, src.Password, dst.Name, dst.Password, filepath.Join(b.TempDir(), "state.db"))
				if got := countINBOX(b, srv, dst); got != n {
					b.Fatalf("mailmove delivered %d of %d", got, n)
				}
				reportRun(b, msgs, took, rss, anon)
				b.ReportMetric(took.Seconds()*1e6/float64(n), "µs/msg")
			}
		})
		b.Run(fmt.Sprintf("doveadm-import-%d", n), func(b *testing.B) {
			for b.Loop() {
				dst, err := srv.AddUser()
				if err != nil {
					b.Fatal(err)
				}
				took, rss, anon := measure(b, srv.Doveadm("import", "-u", dst.Name, "maildir:"+filepath.Join(src.Home, "Maildir"), "", "all"))
				if got := countINBOX(b, srv, dst); got != n {
					b.Fatalf("doveadm imported %d of %d", got, n)
				}
				reportRun(b, msgs, took, rss, anon)
				b.ReportMetric(took.Seconds()*1e6/float64(n), "µs/msg")
			}
		})
	}
}

// benchPlain runs mailmove POP3 → IMAP in plaintext with the given state
// file.
func benchPlain(b *testing.B, popAddr, imapAddr, popUser, popPass, imapUser, imapPass, state string) (time.Duration, int64, int64) {
	args := append([]string{"--state", state}, plainEndpoints(b, popAddr, popUser, imapAddr, imapUser)...)
	return measure(b, mailmoveCommand(b, popPass, imapPass, args...))
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

// BenchmarkRepairMemory measures peak memory while messages that need a
// repair are copied (POP3 → IMAP over TLS, Dovecot at both ends): 50 MB of
// text with NUL bytes (re-encoded as base64), 300 MB of text without a
// header (given one), and 1.1 GB with NUL bytes. They are repaired from
// their spool files, so memory stays that of the rest of the run.
// BENCH_REPAIR_MAX (bytes) leaves out the larger ones.
func BenchmarkRepairMemory(b *testing.B) {
	srv := dovecottest.Need(b, dovecot)
	limit := int64(2 << 30)
	if s := os.Getenv("BENCH_REPAIR_MAX"); s != "" {
		limit, _ = strconv.ParseInt(s, 10, 64)
	}
	for _, tc := range []struct {
		name   string
		size   int
		header bool
	}{{"50MB-NUL", 50 << 20, true}, {"300MB-headerless", 300 << 20, false}, {"1.1GB-NUL", 1100 << 20, true}} {
		if int64(tc.size) > limit {
			continue
		}
		b.Run(tc.name, func(b *testing.B) {
			b.Setenv("BENCH_ARGS", "--max-message-size 2G")
			msg := repairCase(tc.size, tc.header)
			src, err := srv.AddUser()
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Seed(src, [][]byte{msg}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				dst, err := srv.AddUser()
				if err != nil {
					b.Fatal(err)
				}
				took, rss, anon := benchMailmove(b, srv, src, dst, "pop3", "tls", "", 0)
				if n := countINBOX(b, srv, dst); n != 1 {
					b.Fatalf("mailmove delivered %d of 1", n)
				}
				reportRun(b, [][]byte{msg}, took, rss, anon)
			}
		})
	}
}

// repairCase is a message of about size bytes of text, every line with a
// NUL byte in it; without a header when header is false.
func repairCase(size int, header bool) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, size+1024))
	if header {
		buf.WriteString("From: a@example.org\nSubject: NUL bytes\nMessage-ID: <nul@bench>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\n")
	}
	for n := 0; buf.Len() < size; n++ {
		if header {
			fmt.Fprintf(buf, "line %d of a text that holds a NUL byte here: \x00 and goes on after it\n", n)
		} else {
			fmt.Fprintf(buf, "line %d of a text that has no header at all, saved by an old client\n", n)
		}
	}
	return buf.Bytes()
}
