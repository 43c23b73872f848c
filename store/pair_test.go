package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/mailmove/mailmove/migrate"
)

func TestClaim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Claim("pop3:jean@pop.orange.fr", "imap:jean@a.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.Claim("pop3:jean@pop.orange.fr", "imap:jean@a.example"); err != nil {
		t.Fatalf("same pair: %v", err)
	}
	var pe *PairError
	if err := s.Claim("pop3:jean@pop.orange.fr", "imap:jean@b.example"); !errors.As(err, &pe) || pe.Destination != "imap:jean@a.example" {
		t.Fatalf("other destination: %v", err)
	}
	s.Close()
	ro, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Claim("mbox:/x", "imap:jean@a.example"); !errors.As(err, &pe) {
		t.Fatalf("read-only, other source: %v", err)
	}
}

func TestLockPair(t *testing.T) {
	dir := t.TempDir()
	a, err := LockPair(dir, "pop3:u@h", "imap:u@d", "/states/one.db")
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockPair(dir, "pop3:u@h", "imap:u@d", "/states/two.db")
	var pl *PairLocked
	if !errors.As(err, &pl) || !errors.Is(err, migrate.ErrLocked) || pl.Holder != "/states/one.db" {
		t.Fatalf("second run of the pair: %v", err)
	}
	other, err := LockPair(dir, "pop3:u@h", "imap:u@elsewhere", "/states/three.db")
	if err != nil {
		t.Fatalf("another pair: %v", err)
	}
	other.Release()
	a.Release()
	b, err := LockPair(dir, "pop3:u@h", "imap:u@d", "/states/two.db")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Release()
}

// TestClaimPort: a state recorded before identities named unusual ports
// is adopted by the same account at such a port, which is then recorded;
// another port after that is another server.
func TestClaimPort(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Claim("pop3:u@127.0.0.1", "imap:u@127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	src, dst := "pop3:u@127.0.0.1"+PortSuffix+"2110)", "imap:u@127.0.0.1"+PortSuffix+"2143)"
	if err := s.Claim(src, dst); err != nil {
		t.Fatalf("same account, port now named: %v", err)
	}
	var pe *PairError
	if err := s.Claim(src, "imap:u@127.0.0.1"+PortSuffix+"3143)"); !errors.As(err, &pe) || pe.Destination != dst {
		t.Fatalf("another port: %v", err)
	}
}
