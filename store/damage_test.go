package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmove/mailmove/migrate"
)

// filled writes a state of n records and returns its bytes.
func filled(t testing.TB, path string, n int) []byte {
	t.Helper()
	s, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	var recs []migrate.Record
	for i := 0; i < n; i++ {
		recs = append(recs, migrate.Record{ID: fmt.Sprint("uidl:", i), State: migrate.Copied, Folder: "INBOX", Fingerprint: fmt.Sprint(i), Size: int64(i)})
	}
	if err := s.PutMany(recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	return b
}

// TestDamagedState: a truncated, overwritten or foreign state file is set
// aside whole and a new state begun, with a sentence saying so; never a
// crash inside bbolt. Read-only (a dry-run, verify) it is an error.
func TestDamagedState(t *testing.T) {
	dir := t.TempDir()
	good := filled(t, filepath.Join(dir, "good.db"), 3000)
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	cases := map[string][]byte{"random bytes": junk, "an mbox": []byte("From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n")}
	for _, n := range []int{100, 8 << 10, 16 << 10, 64 << 10, 128 << 10, len(good) / 2} {
		cases[fmt.Sprintf("truncated to %d", n)] = good[:n]
	}
	zeroed := bytes.Clone(good)
	copy(zeroed[8192:], make([]byte, 32<<10))
	cases["pages zeroed"] = zeroed
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			os.WriteFile(path, data, 0o600)
			if ro, err := Open(path, true); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Errorf("read-only: %v", err)
				if err == nil {
					ro.Close()
				}
			}
			s, err := Open(path, false)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if !strings.Contains(s.Damaged, "moved aside to") {
				t.Fatalf("no note: %q", s.Damaged)
			}
			aside, _ := filepath.Glob(path + ".damaged-*")
			if len(aside) != 1 {
				t.Fatalf("set aside as %v", aside)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, data) {
				t.Errorf("the damaged file was not kept whole")
			}
			if err := s.Put(migrate.Record{ID: "x", State: migrate.Copied}); err != nil {
				t.Errorf("the new state does not work: %v", err)
			}
		})
	}
	// A good state is opened as it is.
	path := filepath.Join(t.TempDir(), "state.db")
	os.WriteFile(path, good, 0o600)
	s, err := Open(path, false)
	if err != nil || s.Damaged != "" {
		t.Fatalf("good state: %v %q", err, s.Damaged)
	}
	n := 0
	s.Records(func(migrate.Record) error { n++; return nil })
	s.Close()
	if n != 3000 {
		t.Fatalf("%d records", n)
	}
}

// FuzzOpen: whatever bytes the state file holds, opening it neither
// crashes nor hangs, and either reads it or sets it aside whole.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	good := filled(f, filepath.Join(dir, "seed.db"), 5)
	f.Add(good[:16384]) // the meta pages and the first data pages: mutations of more cost the fuzzer more than they find
	f.Add(good[:8192])
	f.Add([]byte("not a state"))
	work := f.TempDir() // one directory for all inputs: t.TempDir costs more than the test
	release = func(string) {}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(work, "state.db")
		old, _ := filepath.Glob(path + "*")
		for _, o := range old {
			os.Remove(o)
		}
		os.WriteFile(path, data, 0o600)
		s, err := Open(path, false)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		if s.Damaged == "" {
			if err := s.Records(func(migrate.Record) error { return nil }); err != nil && !strings.Contains(err.Error(), "record") {
				t.Fatalf("records: %v", err)
			}
			return
		}
		aside, _ := filepath.Glob(path + ".damaged-*")
		if len(aside) != 1 {
			t.Fatalf("set aside as %v", aside)
		}
		if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, data) {
			t.Fatal("not kept whole")
		}
	})
}

// TestMutatedState: a good state file with a few bytes changed anywhere
// opens, or is set aside, but never crashes the process (bbolt trusts the
// offsets in its pages, and some of these make it read unmapped memory).
func TestMutatedState(t *testing.T) {
	good := filled(t, filepath.Join(t.TempDir(), "seed.db"), 200)
	r := mrand.New(mrand.NewPCG(1, 2))
	aside := 0
	for i := 0; i < 400; i++ {
		d := bytes.Clone(good)
		for k := 0; k < 1+r.IntN(8); k++ {
			d[r.IntN(len(d))] = byte(r.IntN(256))
		}
		path := filepath.Join(t.TempDir(), "s.db")
		os.WriteFile(path, d, 0o600)
		s, err := Open(path, false)
		if err != nil {
			t.Fatalf("mutation %d: %v", i, err)
		}
		if s.Damaged != "" {
			aside++
		}
		s.Records(func(migrate.Record) error { return nil })
		s.Put(migrate.Record{ID: "new", State: migrate.Copied, Folder: "INBOX", Fingerprint: "f"})
		s.Close()
	}
	t.Logf("400 mutations: %d set aside", aside)
}
