package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailmove/mailmove/internal/mailcheck"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/internal/mailserver"
)

// The mbox files of these tests are written, compacted and read back by
// programs that share nothing with mailmove: Debian's Python (its mailbox
// module writes Status and X-Status as mutt does, and ">From " quoting)
// and procmail (the classic delivery agent: a From_ line and ">From "
// quoting, no flags). `make clients` installs them.

// client finds a program these tests run; missing, it fails the test
// under CI and skips it loudly elsewhere.
func client(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if mailserver.Required("clients") {
		t.Fatalf("%s is required here (CI=true; make clients installs it): %v", name, err)
	}
	mailserver.Skipped("independent mbox ("+name+")", err)
	t.Skip(err)
	return ""
}

// pyWrite adds messages to an mbox with Python's mailbox module, each with
// its mutt-style flags (set_flags: R and O in Status, D, F and A in
// X-Status) and a From_ line of its date.
const pyWrite = `
import json, mailbox, sys, time
box = mailbox.mbox(sys.argv[1])
box.lock()
for spec in json.load(sys.stdin):
    with open(spec["path"], "rb") as f:
        m = mailbox.mboxMessage(f.read())
    m.set_from("MAILER-DAEMON", time.gmtime(spec["date"]))
    if spec["flags"]:
        m.set_flags(spec["flags"])
    box.add(m)
box.flush()
box.unlock()
`

// pyRead lists an mbox as Python's mailbox module reads it: each message's
// Message-ID, flags and bytes (without its From_ line, quoting left as it
// is in the file).
const pyRead = `
import base64, json, mailbox, sys
box = mailbox.mbox(sys.argv[1])
out = []
for k, m in box.iteritems():
    out.append({"mid": m.get("Message-ID", ""), "flags": m.get_flags(),
                "raw": base64.b64encode(box.get_bytes(k)).decode()})
json.dump(out, sys.stdout)
`

// pyCompact removes from an mbox what Thunderbird marked expunged (bit
// 0x0008 of X-Mozilla-Status), as its "Compact Folders" does; Python
// copies the other messages' bytes as they were.
const pyCompact = `
import mailbox, sys
box = mailbox.mbox(sys.argv[1])
box.lock()
gone = [k for k, m in box.iteritems() if int(m.get("X-Mozilla-Status", "0"), 16) & 0x0008]
for k in gone:
    box.remove(k)
box.flush()
box.unlock()
print(len(gone))
`

func python(t *testing.T, script string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(client(t, "/usr/bin/python3"), append([]string{"-c", script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return out
}

// lf gives a message LF line ends, as mail clients on Unix write mbox.
func lf(m []byte) []byte { return bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n")) }

// withoutFlagFields drops the Status and X-Status fields a writer adds to
// the header: the rest must be the message as it was given.
func withoutFlagFields(m []byte) []byte {
	head, body, _ := bytes.Cut(m, []byte("\r\n\r\n"))
	var keep [][]byte
	for _, l := range bytes.Split(head, []byte("\r\n")) {
		if !bytes.HasPrefix(l, []byte("Status: ")) && !bytes.HasPrefix(l, []byte("X-Status: ")) {
			keep = append(keep, l)
		}
	}
	return append(append(bytes.Join(keep, []byte("\r\n")), "\r\n\r\n"...), body...)
}

// TestMboxWrittenByClients: a folder written by Python's mailbox module
// with mutt-style flags, and one delivered by procmail, migrated into
// Dovecot: every message arrives once as it was given to the writer (line
// endings aside), a body line beginning with "From " included, with the
// flags Python says it holds, and the deleted ones are left out.
func TestMboxWrittenByClients(t *testing.T) {
	procmail := client(t, "procmail")
	msgs := distinctMsgs(mailgen.Mailbox(mailgen.Options{Seed: 71, Count: 60}))
	msgs = append(msgs,
		[]byte("From: a@example.org\r\nSubject: quoting\r\nMessage-ID: <from-line@example.org>\r\n\r\nFrom the first line, a word.\r\nFrom here too.\r\n"),
		[]byte("From: b@example.org\r\nSubject: last line without its line end\r\nMessage-ID: <no-eol@example.org>\r\n\r\nno line end"))
	dir := filepath.Join(t.TempDir(), "Mail")
	os.MkdirAll(dir, 0o700)
	emls := t.TempDir()
	type spec struct {
		Path  string `json:"path"`
		Date  int64  `json:"date"`
		Flags string `json:"flags"`
	}
	var specs []spec
	var viaPython, viaProcmail [][]byte
	wantFlags := map[string][]string{} // by Message-ID
	deleted := 0
	for i, m := range msgs {
		path := filepath.Join(emls, fmt.Sprintf("%d.eml", i))
		os.WriteFile(path, lf(m), 0o600)
		if i%3 == 2 {
			cmd := exec.Command(procmail, "-f", "sender@example.org", "-m", "DEFAULT="+filepath.Join(dir, "Procmail"), "/dev/null")
			cmd.Stdin = bytes.NewReader(lf(m))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("procmail: %v\n%s", err, out)
			}
			viaProcmail = append(viaProcmail, m)
			wantFlags[messageID(m)] = nil // no Status: unread
			continue
		}
		flags := []string{"", "RO", "ROF", "ROA", "ROD"}[i%5]
		specs = append(specs, spec{Path: path, Date: 1700000000 + int64(i)*3600, Flags: flags})
		if strings.Contains(flags, "D") {
			deleted++
			continue
		}
		viaPython = append(viaPython, m)
		var want []string
		if strings.Contains(flags, "R") {
			want = append(want, `\Seen`)
		}
		if strings.Contains(flags, "F") {
			want = append(want, `\Flagged`)
		}
		if strings.Contains(flags, "A") {
			want = append(want, `\Answered`)
		}
		wantFlags[messageID(m)] = want
	}
	in, _ := json.Marshal(specs)
	python(t, pyWrite, in, filepath.Join(dir, "Python"))
	if deleted == 0 || len(viaProcmail) == 0 {
		t.Fatal("the test would prove nothing about deleted or procmail-delivered mail")
	}

	p := newPair(t, nil)
	p.from = "mbox:" + dir
	sum, out, err := p.runMain(t, p.args("--spam", "ignore")...)
	if err != nil || sum.Failed != 0 || sum.Skipped != deleted {
		t.Fatalf("run: %+v %v\n%s", sum, err, out)
	}
	// Python reads the file it wrote: its messages, as it holds them (its
	// writer re-generates each message, and may drop a multipart's
	// epilogue), are what the Python folder must hold; their flags are the
	// ones it reads.
	var seen []struct {
		MID   string `json:"mid"`
		Flags string `json:"flags"`
		Raw   []byte `json:"raw"`
	}
	if err := json.Unmarshal(python(t, pyRead, nil, filepath.Join(dir, "Python")), &seen); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(viaPython)+deleted {
		t.Fatalf("Python reads %d messages, mailmove copied %d and skipped %d", len(seen), len(viaPython), deleted)
	}
	var pythonHolds [][]byte
	for _, s := range seen {
		if strings.Contains(s.Flags, "D") {
			continue
		}
		if _, ok := wantFlags[s.MID]; !ok {
			t.Errorf("Python reads %s, which mailmove did not copy", s.MID)
		}
		if seenFlag := strings.Contains(s.Flags, "R"); seenFlag != slices.Contains(wantFlags[s.MID], `\Seen`) {
			t.Errorf("%s: Python reads flags %q", s.MID, s.Flags)
		}
		pythonHolds = append(pythonHolds, withoutFlagFields(mailcheck.CRLF(s.Raw)))
	}

	// Both writers quote as mboxo does: "From " becomes ">From ", and a
	// line that was ">From " already stays so (Python's bytes are those of
	// the file: quoted). No reader can tell the two
	// apart afterwards (qmail's mbox(5)): such a line reads back as
	// "From ", which is all this format keeps.
	mboxo := func(ms [][]byte) [][]byte {
		var out [][]byte
		for _, m := range ms {
			head, body, _ := bytes.Cut(m, []byte("\r\n\r\n"))
			body = bytes.ReplaceAll(body, []byte("\n>From "), []byte("\nFrom "))
			if bytes.HasPrefix(body, []byte(">From ")) {
				body = body[1:]
			}
			out = append(out, slices.Concat(head, []byte("\r\n\r\n"), body))
		}
		return out
	}
	for folder, want := range map[string][][]byte{"Python": mboxo(pythonHolds), "Procmail": mboxo(viaProcmail)} {
		got := p.fetchAll(t, p.dst, folder)
		bodies := make([][]byte, len(got))
		for i, s := range got {
			bodies[i] = withoutFlagFields(s.body)
		}
		if missing, doubled, foreign := mailcheck.Tally(want, bodies); missing+doubled+foreign > 0 {
			t.Errorf("%s: %d missing, %d doubled, %d not from the source (of %d)", folder, missing, doubled, foreign, len(want))
		}
		for _, s := range got {
			var system []string
			for _, f := range s.flags {
				if f := string(f); strings.HasPrefix(f, `\`) && f != `\Recent` {
					system = append(system, f)
				}
			}
			want := wantFlags[messageID(s.body)]
			slices.Sort(system)
			slices.Sort(want)
			if !slices.Equal(system, want) {
				t.Errorf("%s %s: flags %v, want %v", folder, messageID(s.body), system, want)
			}
		}
	}
}

// messageID is a message's Message-ID, read by the tests' own means.
func messageID(m []byte) string {
	for _, l := range strings.Split(string(m), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), "Message-ID: "); ok {
			return v
		}
		if strings.TrimRight(l, "\r") == "" {
			break
		}
	}
	return ""
}

// distinctMsgs keeps the first of messages with the same Message-ID.
func distinctMsgs(msgs [][]byte) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	for _, m := range msgs {
		if id := messageID(m); !seen[id] {
			seen[id] = true
			out = append(out, m)
		}
	}
	return out
}
