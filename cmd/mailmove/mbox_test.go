package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailcheck"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/internal/profilegen"
	"github.com/mailmove/mailmove/migrate/mbox"
)

// profileDest is where each folder of mailgen's Thunderbird profile must
// land in the test Dovecot, whose \Sent and \Archive folders are named
// "Sent Messages" and "Archive".
var profileDest = map[string]string{
	"Inbox": "INBOX", "Sent": "Sent Messages", "Junk": "Junk", "Trash": "Trash", "Drafts": "Drafts",
	"Archives/2023": "Archive/2023", "Réunions": "Réunions", "Work": "Work", "Work/Projects/Alpha": "Work/Projects/Alpha",
}

// newProfile writes a Thunderbird "Local Folders" directory of count
// messages and returns a pair migrating it to a fresh Dovecot account.
func newProfile(t *testing.T, count int, seed uint64) (*pair, string, []profilegen.Filed) {
	t.Helper()
	p := newPair(t, nil)
	dir := filepath.Join(t.TempDir(), "Local Folders")
	msgs, spam := mailgen.Labelled(mailgen.Options{Seed: seed, Count: count, MaxAttach: 40 << 10, Spam: 0.15, Forged: 0.05})
	filed, err := profilegen.Thunderbird(dir, msgs, spam, seed)
	if err != nil {
		t.Fatal(err)
	}
	p.from = "mbox:" + dir
	return p, dir, filed
}

// expect says where a message of the profile goes and with which flags:
// the Junk folder's messages and those the provider's filter marked as spam
// go to the destination's \Junk folder flagged $Junk; the others carry the
// filter's ham verdict and are flagged $NotJunk.
func expect(f profilegen.Filed, destOf func(string) string) (string, []string) {
	dest, flags := destOf(f.Folder), slices.Clone(f.Flags)
	switch {
	case f.Folder == "Junk":
		flags = append(flags, "$Junk")
	case f.Spam:
		dest, flags = "Junk", append(flags, "$Junk")
	default:
		flags = append(flags, "$NotJunk")
	}
	if f.Deleted {
		flags = append(flags, `\Deleted`)
	}
	slices.Sort(flags)
	return dest, flags
}

func defaultDest(folder string) string { return profileDest[folder] }

// checkProfile verifies that every folder holds exactly its messages (the
// deleted ones only when includeDeleted), once each, byte for byte, with
// their flags and their From_ line date as INTERNALDATE.
func checkProfile(t *testing.T, p *pair, filed []profilegen.Filed, includeDeleted bool) {
	t.Helper()
	byFolder := map[string][]profilegen.Filed{}
	for _, f := range filed {
		if f.Deleted && !includeDeleted {
			continue
		}
		dest, _ := expect(f, defaultDest)
		byFolder[dest] = append(byFolder[dest], f)
	}
	total := 0
	for dest, want := range byFolder {
		got := p.fetchAll(t, p.dst, dest)
		if len(got) != len(want) {
			t.Errorf("%s: %d messages, want %d", dest, len(got), len(want))
		}
		index := map[string]stored{}
		for _, s := range got {
			if _, dup := index[mailcheck.Key(s.body)]; dup {
				t.Errorf("%s: a message is there twice", dest)
			}
			index[mailcheck.Key(s.body)] = s
		}
		for _, f := range want {
			s, ok := index[mailcheck.Key(f.Msg)]
			if !ok {
				t.Errorf("%s: a message is missing or changed (From_ date %s)", dest, f.Date)
				continue
			}
			_, wantFlags := expect(f, defaultDest)
			var gotFlags []string
			for _, fl := range s.flags {
				if !strings.EqualFold(string(fl), `\Recent`) {
					gotFlags = append(gotFlags, string(fl))
				}
			}
			slices.Sort(gotFlags)
			if !slices.Equal(gotFlags, wantFlags) {
				t.Errorf("%s: flags %v, want %v", dest, gotFlags, wantFlags)
			}
			if !s.date.Equal(f.Date) {
				t.Errorf("%s: INTERNALDATE %s, want the From_ line's %s", dest, s.date, f.Date)
			}
			total++
		}
	}
	t.Logf("%d messages checked in %d folders", total, len(byFolder))
}

func countDeleted(filed []profilegen.Filed) int {
	n := 0
	for _, f := range filed {
		if f.Deleted {
			n++
		}
	}
	return n
}

// TestMboxThunderbird migrates a Thunderbird folder set: dry-run, run,
// re-run, new mail appended, --include-deleted, then a compaction.
func TestMboxThunderbird(t *testing.T) {
	p, dir, filed := newProfile(t, 2000, 31)
	deleted := countDeleted(filed)
	if deleted == 0 {
		t.Fatal("the profile has no deleted message: the test would prove nothing about them")
	}

	// The dry-run shows the folder plan and writes nothing.
	sum, out, err := p.runMain(t, p.args("--dry-run")...)
	if err != nil {
		t.Fatalf("dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		`folder "Sent" → "Sent Messages" (the destination's \Sent folder)`,
		`folder "Archives/2023" → "Archive/2023"`,
		`folder "Junk" → "Junk" (the destination's \Junk folder)`,
		`folder "Réunions" → "Réunions" (by name)`,
		`folder "Inbox" → "INBOX"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if sum.Copied != len(filed)-deleted || sum.Skipped != deleted {
		t.Errorf("dry-run: would copy %d, skip %d; want %d and %d", sum.Copied, sum.Skipped, len(filed)-deleted, deleted)
	}
	if got := p.fetchAll(t, p.dst, "Sent Messages"); len(got) != 0 {
		t.Fatalf("the dry-run wrote %d messages", len(got))
	}

	// A --folder-map whose folder is mistyped stops the run before
	// anything is copied, naming the folders there are.
	_, out, err = p.runMain(t, p.args("--folder-map", "Archive/2023=Old/2023")...)
	if err == nil || !strings.Contains(err.Error()+out, `no folder of`) || !strings.Contains(err.Error()+out, `"Archives/2023"`) {
		t.Fatalf("mistyped --folder-map: %v\n%s", err, out)
	}
	if got := p.fetchAll(t, p.dst, "INBOX"); len(got) != 0 {
		t.Fatalf("a mistyped --folder-map copied %d messages", len(got))
	}

	sum, out, err = p.runMain(t, p.args()...)
	if err != nil || sum.Copied != len(filed)-deleted || sum.Skipped != deleted || sum.Failed != 0 {
		t.Fatalf("run: %+v %v\n%s", sum, err, out)
	}
	checkProfile(t, p, filed, false)
	// The server stores folder names as it received them: non-ASCII in
	// modified UTF-7 (RFC 3501 section 5.1.3), levels in Maildir++ form.
	for _, name := range []string{".R&AOk-unions", ".Work.Projects.Alpha", ".Archive.2023"} {
		if _, err := os.Stat(filepath.Join(p.dst.Home, "Maildir", name)); err != nil {
			t.Errorf("Dovecot has no folder %s on disk: %v", name, err)
		}
	}

	sum, out, err = p.runMain(t, p.args()...)
	if err != nil || sum.Copied != 0 || sum.AlreadyDone != len(filed)-deleted {
		t.Fatalf("re-run copied again: %+v %v\n%s", sum, err, out)
	}

	// New mail appended to the Inbox file: only it is copied.
	more, moreSpam := mailgen.Labelled(mailgen.Options{Seed: 32, Count: 25, Spam: 0.15})
	fh, err := os.OpenFile(filepath.Join(dir, "Inbox"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := mbox.NewWriter(fh)
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	for i, m := range more {
		w.Write(mbox.FromLine("-", date), append([]byte("X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\n"), m...))
		filed = append(filed, profilegen.Filed{Folder: "Inbox", Msg: m, Flags: []string{`\Seen`}, Date: date, Spam: moreSpam[i]})
	}
	w.Flush()
	fh.Close()
	sum, out, err = p.runMain(t, p.args()...)
	if err != nil || sum.Copied != len(more) {
		t.Fatalf("after new mail: %+v %v\n%s", sum, err, out)
	}

	// --include-deleted copies what Thunderbird deleted, flagged \Deleted.
	sum, out, err = p.runMain(t, p.args("--include-deleted")...)
	if err != nil || sum.Copied != deleted || sum.Skipped != 0 {
		t.Fatalf("--include-deleted: %+v %v\n%s", sum, err, out)
	}
	checkProfile(t, p, filed, true)

	// Compaction rewrites the Inbox without the deleted messages: every
	// offset moves, nothing is copied again.
	compact(t, filepath.Join(dir, "Inbox"))
	sum, out, err = p.runMain(t, p.args("--include-deleted")...)
	if err != nil || sum.Copied != 0 || sum.Present+sum.Duplicates != 0 {
		t.Fatalf("after compaction: %+v %v\n%s", sum, err, out)
	}
	checkProfile(t, p, filed, true)
}

// compact rewrites an mbox without its expunged messages, as Thunderbird's
// "Compact Folders" does, with Python's mailbox module: mailmove's own
// reader and writer play no part in it.
func compact(t *testing.T, path string) {
	t.Helper()
	out := strings.TrimSpace(string(python(t, pyCompact, nil, path)))
	if out == "0" {
		t.Fatal("compaction dropped nothing")
	}
	t.Logf("compacted %s: dropped %s", filepath.Base(path), out)
}

// TestMboxSIGKILL kills mailmove at random moments while it migrates a
// Thunderbird profile; the last run leaves every message once.
func TestMboxSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	p, _, filed := newProfile(t, 1200, 41)
	kills := p.killLoop(t, 5, len(filed)/6)
	sum, out, err := p.runMain(t, p.args()...)
	if err != nil || sum.Failed != 0 {
		t.Fatalf("final run: %+v %v\n%s", sum, err, out)
	}
	checkProfile(t, p, filed, false)
	t.Logf("%d kills survived; the final run reconciled %d in flight and copied %d", kills, sum.Reconciled, sum.Copied)
	if kills == 0 {
		t.Fatal("no run was killed mid-way: the test proved nothing")
	}
}

// TestMboxThenPOP3 migrates a Thunderbird Inbox, then the POP3 mailbox its
// mail was downloaded from, into the same account: each message once.
func TestMboxThenPOP3(t *testing.T) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 51, Count: 150})
	p := newPair(t, msgs)
	dir := t.TempDir()
	fh, err := os.Create(filepath.Join(dir, "Inbox"))
	if err != nil {
		t.Fatal(err)
	}
	w := mbox.NewWriter(fh)
	for i, m := range msgs {
		// What Thunderbird adds to mail it downloads over POP3.
		head := fmt.Sprintf("X-Account-Key: account2\nX-UIDL: %08x\nX-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nX-Mozilla-Keys: %80s\n", i, "")
		w.Write(mbox.FromLine("-", time.Date(2024, 5, 1, 0, i, 0, 0, time.Local)), append([]byte(head), m...))
	}
	w.Flush()
	fh.Close()

	mboxRun := *p
	mboxRun.from = "mbox:" + dir
	mboxRun.state = filepath.Join(t.TempDir(), "mbox.db")
	sum, out, err := mboxRun.runMain(t, mboxRun.args()...)
	if err != nil || sum.Copied != distinct(msgs) {
		t.Fatalf("mbox run: %+v %v\n%s", sum, err, out)
	}
	sum, out, err = p.runMain(t, p.args()...)
	if err != nil || sum.Copied != 0 || sum.Present+sum.Duplicates != len(msgs) {
		t.Fatalf("POP3 run after the mbox: %+v %v\n%s", sum, err, out)
	}
	checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))
}

// TestMboxConfig names an mbox endpoint and a folder map in the config file,
// and migrates a single mutt-style file with --folder.
func TestMboxConfig(t *testing.T) {
	p, dir, filed := newProfile(t, 80, 61)
	conf := `ca_file = "` + p.srv.CAFile + `"
state = "` + p.state + `"
include_deleted = true
[folder_map]
"Work" = "Old/Work"
"Inbox" = "Old/Inbox"
[endpoints.tb]
type = "mbox"
path = "` + dir + `"
[endpoints.imap]
url = "imaps://` + p.dst.Name + "@" + p.srv.IMAPS + `"
`
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfgPath, []byte(conf), 0o600)
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out}
	t.Setenv("MAILMOVE_TO_PASSWORD", p.dst.Password)
	if err := m.ParseFlags([]string{"--from", "tb", "--to", "imap", "--config", cfgPath, "--quiet"}); err != nil {
		t.Fatal(err)
	}
	sum, err := m.Run(t.Context())
	if err != nil || sum.Copied != len(filed) {
		t.Fatalf("config run: %+v %v\n%s", sum, err, out.String())
	}
	want := map[string]int{}
	for _, f := range filed {
		dest, _ := expect(f, func(folder string) string {
			switch {
			case folder == "Inbox":
				return "Old/Inbox"
			case strings.HasPrefix(folder, "Work"):
				return "Old/" + folder
			}
			return profileDest[folder]
		})
		want[dest]++
	}
	for dest, n := range want {
		if got := len(p.fetchAll(t, p.dst, dest)); got != n {
			t.Errorf("%s: %d messages, want %d", dest, got, n)
		}
	}

	// One file, with --folder: everything in it goes there.
	single := filepath.Join(dir, "Réunions")
	q := newPair(t, nil)
	q.from = "mbox:" + single
	sum, out2, err := q.runMain(t, q.args("--folder", "Meetings/2019", "--spam", "ignore")...)
	n := 0
	for _, f := range filed {
		if f.Folder == "Réunions" && !f.Deleted { // --spam ignore: spam stays too
			n++
		}
	}
	if err != nil || sum.Copied != n || n == 0 {
		t.Fatalf("single file: %+v %v (want %d)\n%s", sum, err, n, out2)
	}
	if got := len(q.fetchAll(t, q.dst, "Meetings/2019")); got != n {
		t.Errorf("Meetings/2019: %d messages, want %d", got, n)
	}
}
