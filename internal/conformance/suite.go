package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove/internal/mailcheck"
	"github.com/mailmove/mailmove/internal/mailserver"
)

// Harness runs mailmove for the suite: Run in the test's process or as a
// child, Start always as a child process (to be killed).
type Harness struct {
	Run   func(t testing.TB, env []string, args ...string) (code int, out string)
	Start func(t testing.TB, env []string, args ...string) *exec.Cmd
}

// Migration is one migration the suite checks: the corpus, in the POP3
// mailbox of a user of Src, into IMAP accounts of Dst.
type Migration struct {
	Src, Dst mailserver.Server
	Corpus   []Msg
	// Args are given to every run (a server's own needs, such as
	// --connections 0).
	Args []string
	// Raw8bit says the destination takes 8-bit headers (UTF8=ACCEPT, RFC
	// 6855): messages with UTF-8 ones must arrive byte for byte, those with
	// Latin-1 ones encoded all the same.
	Raw8bit bool
}

// Run checks the migration, each check a subtest:
//   - a first run copies every message exactly once (mailcheck.Key: as it
//     was, line endings aside, or with only its 8-bit header bytes
//     encoded), or repaired with a recorded reason and its original kept
//     beside the state, byte for byte;
//   - every message is \Seen, spam is in the junk folder (and ham in INBOX),
//     and the flags the server holds are the ones the report says;
//   - INTERNALDATE is the delivery time, read by net/mail from the topmost
//     Received: line (else Date:);
//   - a second run copies nothing; after a message is deleted at the
//     destination, a run names it missing (exit 3), and one with
//     --recopy-missing copies it alone again; a run with its state lost
//     doubles nothing;
//   - runs killed with SIGKILL part-way, then a run to the end, leave every
//     message exactly once.
func (m Migration) Run(t *testing.T, h Harness) {
	src, err := m.Src.AddUser()
	if err != nil {
		t.Fatal(err)
	}
	raw := make([][]byte, len(m.Corpus))
	for i, c := range m.Corpus {
		raw[i] = c.Data
	}
	if err := m.Src.Seed(src, raw); err != nil {
		t.Fatalf("seed %s: %v", m.Src.Name(), err)
	}
	ca := combinedCA(t, m.Src, m.Dst)
	run := func(t *testing.T, dst mailserver.User, state string, extra ...string) (int, string) {
		return h.Run(t, m.env(src, dst), m.args(src, dst, ca, state, extra...)...)
	}

	t.Run("first run", func(t *testing.T) {
		dst, err := m.Dst.AddUser()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		state, report := filepath.Join(dir, "state.db"), filepath.Join(dir, "report.json")
		code, out := run(t, dst, state, "--report", report)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, m.logs())
		}
		rep := readReport(t, report)
		got := m.fetchAll(t, dst, ca)
		m.checkOnce(t, got, state)
		if m.Raw8bit {
			m.checkRaw8bit(t, got)
		}
		m.checkPlacement(t, got, rep)
		m.checkDates(t, got)
		m.checkFlags(t, got, rep)

		code, out = run(t, dst, state)
		if code != 0 || !strings.Contains(out, "copied 0,") {
			t.Fatalf("second run: exit %d\n%s", code, out)
		}
		// One message deleted at the destination: found missing (exit 3),
		// and copied again only when asked.
		m.remove(t, dst, ca, got[len(got)/2])
		code, out = run(t, dst, state)
		if code != 3 || !strings.Contains(out, "no longer") || !strings.Contains(out, "copied 0,") {
			t.Fatalf("run after a message was deleted at the destination: exit %d, want 3\n%s", code, out)
		}
		code, out = run(t, dst, state, "--recopy-missing")
		if code != 0 || !strings.Contains(out, "copied 1,") {
			t.Fatalf("run with --recopy-missing: exit %d\n%s", code, out)
		}
		m.checkOnce(t, m.fetchAll(t, dst, ca), state)
		// The state lost: what is there is found there, nothing doubled.
		for _, p := range []string{state} {
			os.Remove(p)
		}
		code, out = run(t, dst, state)
		if code != 0 || !strings.Contains(out, "copied 0,") {
			t.Fatalf("run with the state lost: exit %d\n%s", code, out)
		}
		m.checkOnce(t, m.fetchAll(t, dst, ca), "")
	})

	t.Run("SIGKILL and run again", func(t *testing.T) {
		dst, err := m.Dst.AddUser()
		if err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(t.TempDir(), "state.db")
		killed := 0
		for i := 0; i < 3; i++ {
			// Killed once the destination holds some more messages than
			// before: an event, not a time, so a slow machine changes
			// nothing.
			before := m.count(t, dst, ca)
			cmd := h.Start(t, m.env(src, dst), m.args(src, dst, ca, state)...)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			deadline := time.Now().Add(2 * time.Minute)
		wait:
			for {
				select {
				case <-exited:
					break wait
				case <-time.After(20 * time.Millisecond):
				}
				if n := m.count(t, dst, ca); n >= before+len(m.Corpus)/6 || time.Now().After(deadline) {
					cmd.Process.Signal(syscall.SIGKILL)
					<-exited
					killed++
					break
				}
			}
		}
		if killed == 0 {
			t.Fatal("no run was killed mid-way: the test proved nothing")
		}
		code, out := run(t, dst, state)
		if code != 0 {
			t.Fatalf("final run: exit %d\n%s", code, out)
		}
		m.checkOnce(t, m.fetchAll(t, dst, ca), state)
		t.Logf("%d run(s) killed", killed)
	})
}

func (m Migration) env(src, dst mailserver.User) []string {
	return []string{"MAILMOVE_FROM_PASSWORD=" + src.Password, "MAILMOVE_TO_PASSWORD=" + dst.Password}
}

func (m Migration) args(src, dst mailserver.User, ca, state string, extra ...string) []string {
	from := "pop3s://" + src.Name + "@" + m.Src.Addrs().POP3S
	args := []string{"--ca-file", ca, "--state", state}
	if m.Src.Addrs().POP3S == "" {
		// popa3d has no TLS: on 127.0.0.1, with the user's consent.
		from = "pop3://" + src.Name + "@" + m.Src.Addrs().POP3 + "?tls=none"
		args = append(args, "--allow-plaintext")
	}
	args = append(args, "--from", from, "--to", "imaps://"+dst.Name+"@"+m.Dst.Addrs().IMAPS)
	return append(append(args, m.Args...), extra...)
}

func (m Migration) logs() string {
	return fmt.Sprintf("--- %s log:\n%s\n--- %s log:\n%s", m.Src.Name(), clipLog(m.Src.Log()), m.Dst.Name(), clipLog(m.Dst.Log()))
}

func clipLog(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// combinedCA writes one PEM file holding both servers' CAs, for --ca-file.
func combinedCA(t *testing.T, servers ...mailserver.Server) string {
	var pem []byte
	for _, s := range servers {
		if s.CAFile() == "" {
			continue
		}
		b, err := os.ReadFile(s.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		pem = append(pem, b...)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// stored is a message the destination holds.
type stored struct {
	folder string
	uid    uint32
	body   []byte
	flags  []string
	date   time.Time
}

func (m Migration) login(t testing.TB, u mailserver.User, ca string) *imapclient.Client {
	t.Helper()
	cfg, err := mailserver.TLSConfig(ca)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(m.Dst.Addrs().IMAPS, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// count is how many messages the account's INBOX and junk-like folders
// hold now.
func (m Migration) count(t testing.TB, u mailserver.User, ca string) int {
	c := m.login(t, u, ca)
	defer c.Close()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range boxes {
		if noSelect(b.Attrs) {
			continue
		}
		st, err := c.Status(b.Mailbox, &imapv2.StatusOptions{NumMessages: true}).Wait()
		if err == nil && st.NumMessages != nil {
			n += int(*st.NumMessages)
		}
	}
	return n
}

// remove deletes one stored message at the destination, as the user would
// in a mail client.
func (m Migration) remove(t testing.TB, u mailserver.User, ca string, s stored) {
	t.Helper()
	c := m.login(t, u, ca)
	defer c.Close()
	if _, err := c.Select(s.folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	uids := imapv2.UIDSetNum(imapv2.UID(s.uid))
	if err := c.Store(uids, &imapv2.StoreFlags{Op: imapv2.StoreFlagsAdd, Silent: true, Flags: []imapv2.Flag{imapv2.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
}

func noSelect(attrs []imapv2.MailboxAttr) bool {
	for _, a := range attrs {
		if strings.EqualFold(string(a), `\Noselect`) || strings.EqualFold(string(a), `\NonExistent`) {
			return true
		}
	}
	return false
}

// fetchAll reads every message of every folder of the account.
func (m Migration) fetchAll(t testing.TB, u mailserver.User, ca string) []stored {
	t.Helper()
	c := m.login(t, u, ca)
	defer c.Close()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for _, b := range boxes {
		if noSelect(b.Attrs) {
			continue
		}
		data, err := c.Select(b.Mailbox, &imapv2.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("select %s: %v", b.Mailbox, err)
		}
		if data.NumMessages == 0 {
			continue
		}
		sec := &imapv2.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imapv2.SeqSet{imapv2.SeqRange{Start: 1, Stop: 0}}, &imapv2.FetchOptions{
			UID: true, Flags: true, InternalDate: true, BodySection: []*imapv2.FetchItemBodySection{sec},
		}).Collect()
		if err != nil {
			t.Fatalf("fetch %s: %v", b.Mailbox, err)
		}
		for _, x := range msgs {
			s := stored{folder: b.Mailbox, uid: uint32(x.UID), body: x.FindBodySection(sec), date: x.InternalDate}
			for _, f := range x.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					s.flags = append(s.flags, string(f))
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// match pairs each corpus message with the stored message that is it.
func (m Migration) match(t *testing.T, got []stored, state string) map[int]stored {
	t.Helper()
	byKey := map[string][]stored{}
	byMID := map[string][]stored{}
	for _, s := range got {
		byKey[mailcheck.Key(s.body)] = append(byKey[mailcheck.Key(s.body)], s)
		if msg, err := mail.ReadMessage(bytes.NewReader(s.body)); err == nil {
			if id := msg.Header.Get("Message-ID"); id != "" {
				byMID[id] = append(byMID[id], s)
			}
		}
	}
	originals := map[string]bool{}
	if state != "" {
		files, _ := filepath.Glob(strings.TrimSuffix(state, ".db") + ".originals/*.eml")
		for _, f := range files {
			b, _ := os.ReadFile(f)
			originals[string(b)] = true
		}
	}
	out := map[int]stored{}
	used := map[string]int{}
	for i, c := range m.Corpus {
		if l := byKey[mailcheck.Key(c.Data)]; len(l) > 0 {
			out[i] = l[0]
			continue
		}
		// Repaired otherwise (a NUL byte re-encoded, a part list closed):
		// said so in the message, and the original kept as it was read.
		msg, err := mail.ReadMessage(bytes.NewReader(mailcheck.CRLF(c.Data)))
		id := ""
		if err == nil {
			id = msg.Header.Get("Message-ID")
		}
		for _, s := range byMID[id] {
			if id == "" || !bytes.HasPrefix(s.body, []byte("X-Mailmove-Repair: ")) {
				continue
			}
			if state != "" && !originals[string(mailcheck.CRLF(c.Data))] {
				t.Errorf("message %d (%s) was repaired but its original is not kept byte for byte", i, id)
			}
			out[i] = s
			used[id]++
			break
		}
	}
	return out
}

// checkOnce: every corpus message once, nothing else.
func (m Migration) checkOnce(t *testing.T, got []stored, state string) {
	t.Helper()
	found := m.match(t, got, state)
	distinct := map[string]bool{}
	for i, c := range m.Corpus {
		if _, ok := found[i]; !ok {
			t.Errorf("message %d is not at the destination (or altered): %.120q", i, c.Data)
		}
		distinct[mailcheck.Key(c.Data)] = true
	}
	if len(got) != len(distinct) {
		t.Errorf("the destination holds %d messages, want %d distinct ones", len(got), len(distinct))
		seen := map[string]stored{}
		for _, s := range got {
			k := mailcheck.Key(s.body)
			if o, ok := seen[k]; ok {
				t.Errorf("twice: %s UID %d and %s UID %d: %.200q", o.folder, o.uid, s.folder, s.uid, s.body)
			}
			seen[k] = s
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// report is what the checks read of --report.
type report struct {
	Messages []struct {
		ID     string   `json:"id"`
		Action string   `json:"action"`
		Folder string   `json:"folder"`
		UID    uint32   `json:"uid"`
		Flags  []string `json:"flags"`
	} `json:"messages"`
	Summary struct {
		JunkFolder string `json:"junk_folder"`
	} `json:"summary"`
}

func readReport(t *testing.T, path string) report {
	t.Helper()
	var r report
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	return r
}

// checkPlacement: spam in the junk folder the run chose, the rest in
// INBOX, and the junk folder one the server has.
func (m Migration) checkPlacement(t *testing.T, got []stored, rep report) {
	t.Helper()
	junk := rep.Summary.JunkFolder
	if junk == "" {
		t.Fatal("the report names no junk folder")
	}
	for i, s := range m.match(t, got, "") {
		want := "INBOX"
		if m.Corpus[i].Spam {
			want = junk
		}
		if s.folder != want {
			t.Errorf("message %d (spam %v) is in %q, want %q", i, m.Corpus[i].Spam, s.folder, want)
		}
	}
}

// checkFlags: every message \Seen, and the flags held are those the report
// says were kept.
func (m Migration) checkFlags(t *testing.T, got []stored, rep report) {
	t.Helper()
	said := map[string][]string{}
	for _, e := range rep.Messages {
		if e.Action == "copied" {
			said[fmt.Sprintf("%s\x00%d", e.Folder, e.UID)] = e.Flags
		}
	}
	for _, s := range got {
		if !slices.Contains(s.flags, `\Seen`) {
			t.Errorf("%s UID %d is not \\Seen: %v", s.folder, s.uid, s.flags)
		}
		want, ok := said[fmt.Sprintf("%s\x00%d", s.folder, s.uid)]
		if !ok {
			continue // the server gave no UID: the report cannot name it
		}
		a, b := slices.Clone(s.flags), slices.Clone(want)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.EqualFunc(a, b, strings.EqualFold) {
			t.Errorf("%s UID %d holds %v, the report says %v", s.folder, s.uid, a, b)
		}
	}
}

// checkDates: INTERNALDATE is the time the topmost Received: line gives,
// else the Date: field.
func (m Migration) checkDates(t *testing.T, got []stored) {
	t.Helper()
	for i, s := range m.match(t, got, "") {
		if want, ok := mailcheck.ArrivalDate(m.Corpus[i].Data); ok && !s.date.Equal(want) {
			t.Errorf("message %d: INTERNALDATE %s, want %s", i, s.date, want)
		}
	}
}

// checkRaw8bit: every message with 8-bit header bytes (and nothing else to
// repair) is stored exactly as it was, line endings aside.
func (m Migration) checkRaw8bit(t *testing.T, got []stored) {
	t.Helper()
	n, latin := 0, 0
	for i, s := range m.match(t, got, "") {
		head, _, _ := bytes.Cut(mailcheck.CRLF(m.Corpus[i].Data), []byte("\r\n\r\n"))
		if !bytes.ContainsFunc(head, func(r rune) bool { return r >= 0x80 }) || bytes.HasPrefix(s.body, []byte("X-Mailmove-Repair: nul")) {
			continue
		}
		if !utf8.Valid(head) {
			// Not UTF-8 (Latin-1): RFC 6855 lets the server take UTF-8
			// only, so these go encoded all the same.
			latin++
			stored, _, _ := bytes.Cut(s.body, []byte("\r\n\r\n"))
			if !bytes.HasPrefix(s.body, []byte("X-Mailmove-Repair: header-8bit")) || bytes.ContainsFunc(stored, func(r rune) bool { return r >= 0x80 }) {
				t.Errorf("message %d has 8-bit header bytes that are not UTF-8, but they were not encoded: %.160q", i, s.body)
			}
			continue
		}
		n++
		if !mailcheck.Exact(m.Corpus[i].Data, s.body) {
			t.Errorf("message %d has UTF-8 header bytes and the server takes them, but it was not stored as it was: %.160q", i, s.body)
		}
	}
	if n == 0 || latin == 0 {
		t.Errorf("%d message(s) with UTF-8 header bytes, %d with Latin-1 ones in the corpus: the check proved little", n, latin)
	}
}
