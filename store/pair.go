package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mailmove/mailmove/migrate"
)

// PairError is a state file that belongs to another source and destination
// than the run's: using it would take that migration's records for this
// one's ("everything is at the destination" for an empty account).
type PairError struct {
	Path                      string
	Source, Destination       string // the state's
	RunSource, RunDestination string // the run's
}

func (e *PairError) Error() string {
	return fmt.Sprintf("state file %s belongs to %s → %s, not to %s → %s", e.Path, e.Source, e.Destination, e.RunSource, e.RunDestination)
}

var (
	keySource = []byte("source")
	keyDest   = []byte("destination")
)

// Claim records that the state belongs to the pair source → dest, or
// checks that it does: a state that belongs to another pair is a
// *PairError. A state written before states recorded their pair is
// adopted. Read-only, it only checks.
func (s *Store) Claim(source, dest string) error {
	var src, dst string
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			src, dst = string(b.Get(keySource)), string(b.Get(keyDest))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if src != "" || dst != "" {
		if !samePair(src, source) || !samePair(dst, dest) {
			return &PairError{Path: s.path, Source: src, Destination: dst, RunSource: source, RunDestination: dest}
		}
		if src == source && dst == dest || s.db.IsReadOnly() {
			return nil
		}
		// Recorded before identities named unusual ports: named now.
	} else if s.db.IsReadOnly() {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if b == nil {
			return errors.New("state has no meta bucket")
		}
		if err := b.Put(keySource, []byte(source)); err != nil {
			return err
		}
		return b.Put(keyDest, []byte(dest))
	})
}

// PortSuffix begins the part of an endpoint identity that names a port
// other than the protocol's usual ones: "pop3:u@host (port 2110)".
const PortSuffix = " (port "

// samePair reports whether a recorded identity is the run's: the same, or
// the same without the port, as states recorded before ports were named.
func samePair(recorded, now string) bool {
	base, _, _ := strings.Cut(now, PortSuffix)
	return recorded == now || recorded == base
}

// PairLock is held, for a whole run, by the one run of a source and
// destination pair, whatever state file it uses: two runs of the same pair
// with two state files would each copy everything.
type PairLock struct{ f *os.File }

// LockPair takes the lock of the pair in dir (the state directory), at
// once or not at all: another run holding it is migrate.ErrLocked, with
// the state file that run uses. statePath is written in the lock for that
// message.
func LockPair(dir, source, dest, statePath string) (*PairLock, error) {
	if err := os.MkdirAll(filepath.Join(dir, "locks"), 0o700); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(source + "\x00" + dest))
	path := filepath.Join(dir, "locks", hex.EncodeToString(sum[:12])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, &PairLocked{Source: source, Destination: dest, Holder: strings.TrimSpace(string(holder))}
	}
	f.Truncate(0)
	f.WriteAt([]byte(statePath+"\n"), 0)
	return &PairLock{f: f}, nil
}

// Release lets the lock go.
func (l *PairLock) Release() {
	if l != nil && l.f != nil {
		unlock(l.f)
		l.f.Close()
		l.f = nil
	}
}

// PairLocked is another run of the same pair, now.
type PairLocked struct{ Source, Destination, Holder string }

// Is makes a PairLocked a migrate.ErrLocked.
func (e *PairLocked) Is(target error) bool { return target == migrate.ErrLocked }

func (e *PairLocked) Error() string {
	s := fmt.Sprintf("another mailmove run is copying %s → %s now", e.Source, e.Destination)
	if e.Holder != "" {
		s += " (with state " + e.Holder + ")"
	}
	return s
}

// LockAccount takes the lock of a destination account in dir, held for a
// whole run. When another run holds it (copying into the same account from
// another source) it is not an error: it returns nil and what that run said
// of itself, and the caller reads the destination again as it goes.
func LockAccount(dir, dest, source string) (*PairLock, string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "locks"), 0o700); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256([]byte("account\x00" + dest))
	path := filepath.Join(dir, "locks", hex.EncodeToString(sum[:12])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, "", err
	}
	if err := tryLock(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, strings.TrimSpace(string(holder)), nil
	}
	f.Truncate(0)
	f.WriteAt([]byte(source+"\n"), 0)
	return &PairLock{f: f}, "", nil
}
