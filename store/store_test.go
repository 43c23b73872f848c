package store

import (
	"errors"
	"os"
	"path/filepath"
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
