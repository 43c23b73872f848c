package mbox

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/mime"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		header  string
		want    []string
		deleted bool
	}{
		{"Status: RO\n", []string{`\Seen`}, false},
		{"Status: O\n", nil, false},
		{"Status: RO\nX-Status: AFT\n", []string{`\Answered`, `\Draft`, `\Flagged`, `\Seen`}, false},
		{"X-Status: D\n", nil, true},
		{"X-Keywords: work, $Label1 urgent\n", []string{"$Label1", "urgent", "work"}, false},
		{"X-Mozilla-Status: 0001\n", []string{`\Seen`}, false},
		{"X-Mozilla-Status: 1007\nX-Mozilla-Keys: $label1 todo                 \n", []string{"$Forwarded", "$label1", `\Answered`, `\Flagged`, `\Seen`, "todo"}, false},
		{"X-Mozilla-Status: 0009\n", []string{`\Seen`}, true},
		{"X-Mozilla-Status: zz\n", nil, false},
		{"Subject: nothing\n", nil, false},
	} {
		h := mime.ParseHeader([]byte(tc.header + "\n"))
		got := Flags(h)
		w := slices.Clone(tc.want)
		slices.Sort(w)
		if !slices.Equal(got, w) || Deleted(h) != tc.deleted {
			t.Errorf("%q: got %v deleted=%v, want %v deleted=%v", tc.header, got, Deleted(h), w, tc.deleted)
		}
	}
}

// copyFixture places a fixture under dir with the given name.
func copyFixture(t *testing.T, dir, fixture, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSourceDirectory(t *testing.T) {
	dir := t.TempDir()
	copyFixture(t, dir, "thunderbird.mbox", "Inbox")
	copyFixture(t, dir, "thunderbird.mbox", "Inbox.msf")
	copyFixture(t, dir, "mutt.mbox", "Archives.sbd/mutt")
	copyFixture(t, dir, "pine.mbox", "pine")
	copyFixture(t, dir, "notmbox.txt", "README")
	src := NewSource(Config{Path: dir, Location: time.UTC})
	entries, err := src.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var folders, skips []string
	for _, e := range entries {
		folders = append(folders, e.Folder)
		if e.Skip != "" {
			skips = append(skips, e.Folder+": "+e.Skip)
		}
	}
	wantFolders := []string{"Archives/mutt", "Archives/mutt", "Inbox", "Inbox", "Inbox", "pine", "pine"}
	if !slices.Equal(folders, wantFolders) {
		t.Errorf("folders %v, want %v", folders, wantFolders)
	}
	if len(skips) != 3 || !strings.HasPrefix(skips[0], "Inbox: deleted") || !strings.Contains(skips[0], "--include-deleted") ||
		!strings.HasPrefix(skips[1], "pine: the mail store's folder data") || !strings.HasPrefix(skips[2], "pine: deleted") {
		t.Errorf("skips: %q", skips)
	}
	if notes := strings.Join(src.Notes(), "\n"); !strings.Contains(notes, "README: not an mbox file") {
		t.Errorf("notes do not mention the file that is not an mbox:\n%s", notes)
	}

	var got []*migrate.Incoming
	var bodies []string
	var todo []migrate.Entry
	for _, e := range entries {
		if e.Skip == "" {
			todo = append(todo, e)
		}
	}
	err = src.Retrieve(context.Background(), todo, func(in *migrate.Incoming) error {
		b, err := io.ReadAll(in.R)
		got, bodies = append(got, in), append(bodies, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("retrieved %d, want 4", len(got))
	}
	// mutt: Content-Length framed it, so it and Lines go with Status.
	if want := "Return-Path: <alice@example.org>\nFrom: Alice <alice@example.org>\nTo: bob@example.com\nSubject: dinner\n" +
		"Date: Sat, 6 Jan 2024 21:04:00 +0100\nMessage-ID: <dinner@example.org>\n\nDinner at eight.\nFrom the kitchen, with love.\n"; bodies[0] != want {
		t.Errorf("mutt message:\n%q\nwant\n%q", bodies[0], want)
	}
	if !slices.Equal(got[0].Flags, []string{`\Answered`, `\Flagged`, `\Seen`}) || got[1].Flags != nil {
		t.Errorf("mutt flags %v, %v", got[0].Flags, got[1].Flags)
	}
	if got[0].DateSource != string(mime.DateFromLine) || !got[0].Date.Equal(time.Date(2024, 1, 6, 21, 4, 11, 0, time.UTC)) {
		t.Errorf("mutt date %v from %s", got[0].Date, got[0].DateSource)
	}
	// Thunderbird: its headers go, nothing else changes.
	if strings.Contains(bodies[2], "X-Mozilla") || strings.Contains(bodies[2], "X-Account-Key") || strings.Contains(bodies[2], "X-UIDL") ||
		!strings.HasPrefix(bodies[2], "Return-Path: <alice@example.org>\nReceived: from mx.example.org") ||
		!strings.Contains(bodies[2], "\nFrom the desk of Alice") {
		t.Errorf("Thunderbird message:\n%s", bodies[2])
	}
	if want := []string{"$Forwarded", "$label1", `\Answered`, `\Flagged`, `\Seen`, "todo"}; !slices.Equal(got[3].Flags, want) {
		t.Errorf("Thunderbird flags %v, want %v", got[3].Flags, want)
	}

	// A file rewritten after listing stops the run instead of reading the
	// wrong bytes.
	time.Sleep(10 * time.Millisecond)
	copyFixture(t, dir, "mboxrd.mbox", "Inbox")
	err = src.Retrieve(context.Background(), todo[2:], func(*migrate.Incoming) error { return nil })
	var fatal *migrate.Fatal
	if !errors.As(err, &fatal) || !strings.Contains(err.Error(), "changed") {
		t.Errorf("changed file: got %v, want a fatal error saying it changed", err)
	}
}

func TestSourceIncludeDeleted(t *testing.T) {
	dir := t.TempDir()
	copyFixture(t, dir, "pine.mbox", "pine")
	src := NewSource(Config{Path: filepath.Join(dir, "pine"), IncludeDeleted: true})
	entries, err := src.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Skip == "" || entries[1].Skip != "" || entries[1].Folder != "pine" {
		t.Fatalf("entries %+v", entries)
	}
	err = src.Retrieve(context.Background(), entries[1:], func(in *migrate.Incoming) error {
		b, _ := io.ReadAll(in.R)
		if !slices.Contains(in.Flags, `\Deleted`) || !slices.Contains(in.Flags, "urgent") {
			t.Errorf("flags %v", in.Flags)
		}
		if strings.Contains(string(b), "X-UID") || strings.Contains(string(b), "Status") || strings.Contains(string(b), "X-Keywords") {
			t.Errorf("bookkeeping left in:\n%s", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSourceNotMbox(t *testing.T) {
	src := NewSource(Config{Path: "testdata/notmbox.txt"})
	_, err := src.List(context.Background())
	var fatal *migrate.Fatal
	if !errors.As(err, &fatal) || !errors.Is(err, ErrNotMbox) {
		t.Errorf("got %v, want a fatal ErrNotMbox", err)
	}
}

// TestSymlinks: linked folders and files are followed, a loop or a second
// way to the same folder is read once and named, a dangling link is named,
// and a root that is a link works.
func TestSymlinks(t *testing.T) {
	store := t.TempDir()
	copyFixture(t, store, "mboxrd.mbox", "Archive2019")
	copyFixture(t, store, "mboxrd.mbox", "Old.sbd/Letters")
	profile := t.TempDir()
	copyFixture(t, profile, "mboxrd.mbox", "Inbox")
	for _, l := range []struct{ target, name string }{
		{filepath.Join(store, "Archive2019"), "Archive2019"},
		{filepath.Join(store, "Old.sbd"), "Old.sbd"},
		{profile, "Loop.sbd"},                     // the profile inside itself
		{filepath.Join(store, "nothing"), "Gone"}, // dangling
	} {
		if err := os.Symlink(l.target, filepath.Join(profile, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(t.TempDir(), "link-to-profile")
	if err := os.Symlink(profile, root); err != nil {
		t.Fatal(err)
	}
	s := NewSource(Config{Path: root})
	entries, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	folders := map[string]int{}
	for _, e := range entries {
		folders[e.Folder]++
	}
	want, _ := NewSource(Config{Path: filepath.Join(profile, "Inbox")}).List(context.Background())
	for _, f := range []string{"Inbox", "Archive2019", "Old/Letters"} {
		if folders[f] != len(want) {
			t.Errorf("folder %s: %d messages, want %d (all: %v)", f, folders[f], len(want), folders)
		}
	}
	if len(folders) != 3 {
		t.Errorf("folders %v", folders)
	}
	notes := strings.Join(s.Notes(), "\n")
	for _, w := range []string{"Loop.sbd: the same as the top folder", "Gone: a symbolic link to nothing readable"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}
}

// TestProfileRoot: a whole Thunderbird profile is refused with its local
// mail stores named, not read with every folder under "Mail/Local Folders"
// and the IMAP caches of ImapMail/ copied as if they were local mail.
func TestProfileRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"Mail/Local Folders", "Mail/pop.orange.fr", "ImapMail/imap.example.org"} {
		os.MkdirAll(filepath.Join(root, d), 0o700)
	}
	os.WriteFile(filepath.Join(root, "prefs.js"), []byte("user_pref(\"x\", 1);\n"), 0o600)
	os.WriteFile(filepath.Join(root, "Mail/Local Folders/Inbox"), []byte("From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n"), 0o600)
	os.WriteFile(filepath.Join(root, "places.sqlite"), []byte("SQLite format 3\x00"), 0o600)
	_, err := NewSource(Config{Path: root}).List(context.Background())
	var fatal *migrate.Fatal
	if !errors.As(err, &fatal) || !strings.Contains(err.Error(), "Thunderbird profile") || !strings.Contains(err.Error(), filepath.Join(root, "Mail", "Local Folders")) {
		t.Fatalf("err %v", err)
	}
	// A store's own client files are named when skipped.
	local := filepath.Join(root, "Mail", "Local Folders")
	os.WriteFile(filepath.Join(local, "panacea.dat"), []byte("x"), 0o600)
	src := NewSource(Config{Path: local})
	if _, err := src.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(src.Notes(), func(n string) bool { return strings.Contains(n, "panacea.dat") }) {
		t.Errorf("notes %q", src.Notes())
	}
}
