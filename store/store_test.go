package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mailmove/mailmove/migrate"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	s, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("state mode %v", st.Mode())
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v", st.Mode())
	}
	rec := migrate.Record{ID: "uidl:1", State: migrate.Pending, Folder: "INBOX", Fingerprint: "f1", Size: 10}
	if err := s.Put(rec); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ByFingerprint("INBOX", "f1"); ok {
		t.Fatal("a pending message counts as copied")
	}
	rec.State, rec.UID = migrate.Copied, 7
	s.Put(rec)
	if id, ok, _ := s.ByFingerprint("INBOX", "f1"); !ok || id != "uidl:1" {
		t.Fatalf("ByFingerprint = %q %v", id, ok)
	}
	if _, ok, _ := s.ByFingerprint("Other", "f1"); ok {
		t.Fatal("fingerprints leak across folders")
	}
	got, ok, err := s.Get("uidl:1")
	if err != nil || !ok || got.UID != 7 || got.State != migrate.Copied {
		t.Fatalf("Get = %+v %v %v", got, ok, err)
	}

	// Another process (here: another handle) cannot open it.
	if _, err := Open(path, false); !errors.Is(err, migrate.ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()

	// Reopened, the record is still there; a failed retry drops it from the
	// fingerprint index.
	s, err = Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec.State = migrate.Failed
	s.Put(rec)
	if _, ok, _ := s.ByFingerprint("INBOX", "f1"); ok {
		t.Fatal("a failed message still counts as copied")
	}
	n := 0
	s.Records(func(migrate.Record) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d records", n)
	}
}

// TestPutMany: one transaction; a later record of the same ID wins, and the
// fingerprint index follows it within the batch.
func TestPutMany(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := migrate.Record{ID: "a", State: migrate.Pending, Folder: "INBOX", Fingerprint: "fa"}
	b := migrate.Record{ID: "b", State: migrate.Copied, Folder: "INBOX", Fingerprint: "fb", UID: 2}
	done := a
	done.State, done.UID = migrate.Copied, 1
	if err := s.PutMany([]migrate.Record{a, b, done}); err != nil {
		t.Fatal(err)
	}
	for id, fp := range map[string]string{"a": "fa", "b": "fb"} {
		got, ok, _ := s.Get(id)
		if !ok || got.State != migrate.Copied {
			t.Fatalf("%s: %+v %v", id, got, ok)
		}
		if who, ok, _ := s.ByFingerprint("INBOX", fp); !ok || who != id {
			t.Fatalf("ByFingerprint(%s) = %q %v", fp, who, ok)
		}
	}
	failed := done
	failed.State = migrate.Failed
	if err := s.PutMany([]migrate.Record{failed}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ByFingerprint("INBOX", "fa"); ok {
		t.Fatal("a failed message still counts as copied")
	}
}

// TestReleasePages: after the records of a large state are read, their pages
// no longer count in the process's resident memory, and the records are
// still all there.
func TestReleasePages(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recs []migrate.Record
	for i := range 20000 {
		recs = append(recs, migrate.Record{ID: fmt.Sprintf("uidl:%08d", i), State: migrate.Copied, Folder: "INBOX",
			Fingerprint: fmt.Sprintf("%064d", i), Reason: strings.Repeat("x", 300)})
	}
	if err := s.PutMany(recs); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		t.Skip("resident memory per mapping is read from /proc/self/smaps")
	}
	mapped := func() int64 { // kB of the state file resident in this process
		data, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			t.Fatalf("smaps: %v", err)
		}
		var kb, total int64
		in, found := false, false
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "-") && strings.Contains(line, " ") && !strings.HasSuffix(line, "kB") {
				in = strings.HasSuffix(line, s.path)
				found = found || in
			}
			if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				total += kb
			}
		}
		if !found {
			t.Fatal("the state file is not mapped: the measure would say 0 kB whatever happens")
		}
		return total
	}
	n := 0
	var during int64
	err = s.Records(func(migrate.Record) error {
		if n++; n == len(recs)*3/4 {
			during = mapped() // the reading has touched most pages by now
		}
		return nil
	})
	if err != nil || n != len(recs) {
		t.Fatalf("%d records, %v", n, err)
	}
	after := mapped()
	if during <= 1024 {
		t.Fatalf("only %d kB resident while reading 20,000 records: the measure does not see the pages", during)
	}
	if after > 1024 {
		t.Fatalf("%d kB of the state file still resident after reading it (%d kB while reading)", after, during)
	}
	if got, ok, _ := s.Get("uidl:00012345"); !ok || got.Fingerprint != fmt.Sprintf("%064d", 12345) {
		t.Fatalf("after the release: %+v %v", got, ok)
	}
}
