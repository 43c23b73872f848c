// Package store is mailmove's checkpoint: a bbolt database, one per
// source/destination pair, recording what happened to every source message.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mailmove/mailmove/migrate"
)

var (
	bucketMsgs = []byte("messages")     // id → Record (JSON)
	bucketFP   = []byte("fingerprints") // folder \x00 fingerprint → id
	bucketMeta = []byte("meta")
)

// Store is a checkpoint in one file. Every Put is committed and fsynced before
// it returns.
type Store struct {
	// Damaged, when set, says the state file was damaged and set aside for
	// a new one, and where it went: for the user.
	Damaged string

	db         *bolt.DB
	badRecords int    // records Records could not read
	path       string // resolved, as /proc/self/maps names it
	writes     int    // transactions since the mapped pages were last released
}

// releaseEvery is how many write transactions pass between two releases of
// the mapped pages (see releasePages). A release is cheap (a read of
// /proc/self/maps, one madvise), but every page touched afterwards faults
// back in: released after every transaction, the hot pages of a 100,000-
// message state cost a fifth of the run's CPU in page faults; every 16,
// the random inserts into the fingerprint index still leave 24 MB resident.
// Every 2 costs a few percent of a 100,000-message run and keeps under
// 10 MB resident.
const releaseEvery = 2

// release is releasePages; FuzzOpen turns it off: a fuzzing worker's
// memory map is so long that reading it costs more than the test.
var release = releasePages

var _ migrate.Checkpoint = (*Store)(nil)

// Open opens or creates the state file at path (mode 0600, its directory
// 0700). When another process holds it, Open fails at once with
// migrate.ErrLocked. readOnly opens an existing file without changing it.
func Open(path string, readOnly bool) (*Store, error) {
	if !readOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
	}
	var damaged *DamagedError
	db, movedTo, err := open(path, readOnly)
	if errors.As(err, &damaged) && movedTo != "" {
		db, _, err = open(path, false)
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, migrate.ErrLocked)
	}
	if errors.As(err, &damaged) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	// bbolt applies the mode only when it creates the file.
	if !readOnly {
		os.Chmod(path, 0o600)
	}
	s := &Store{db: db, path: path}
	if movedTo != "" {
		s.Damaged = fmt.Sprintf("%v: moved aside to %s; a new state is begun, and the messages already at the destination are recognised there and not copied again", damaged, movedTo)
	}
	if abs, err := filepath.Abs(path); err == nil {
		s.path = abs
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			s.path = real
		}
	}
	if !readOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketMsgs, bucketFP, bucketMeta} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("init state %s: %w", path, err)
		}
	}
	return s, nil
}

// open opens path with bbolt after checking, page by page, that bbolt can
// read it safely.
//
// A damaged file is, unless readOnly, set aside under the lock (never
// deleted) and movedTo says where: the caller begins afresh, and what the
// old state recorded as copied is found at the destination by the pre-copy
// look there, so nothing is copied twice.
func open(path string, readOnly bool) (db *bolt.DB, movedTo string, err error) {
	err = withLock(path, readOnly, 500*time.Millisecond, func() error {
		err := check(path)
		var damaged *DamagedError
		if errors.As(err, &damaged) && !readOnly {
			movedTo = fmt.Sprintf("%s.damaged-%s", path, time.Now().Format("20060102T150405"))
			if rerr := os.Rename(path, movedTo); rerr != nil {
				movedTo = ""
				return fmt.Errorf("%w; and it cannot be moved aside: %v", err, rerr)
			}
		}
		return err
	})
	if errors.Is(err, migrate.ErrLocked) {
		return nil, "", bolterrors.ErrTimeout
	}
	if err != nil {
		return nil, movedTo, err
	}
	db, err = openBolt(path, &bolt.Options{Timeout: 500 * time.Millisecond, ReadOnly: readOnly})
	return db, "", err
}

// Notes says what the user should know of the state: that it was damaged
// and set aside, or that records could not be read.
func (s *Store) Notes() []string {
	var out []string
	if s.Damaged != "" {
		out = append(out, s.Damaged)
	}
	if s.badRecords > 0 {
		out = append(out, fmt.Sprintf("%d record(s) of the state file could not be read and were left out: "+
			"their messages are looked for at the destination before anything is copied", s.badRecords))
	}
	return out
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

func fpKey(folder, fp string) []byte { return []byte(folder + "\x00" + fp) }

// Records implements migrate.Checkpoint. It reads the records a few
// thousand at a time, each lot in its own read transaction, and hands the
// pages read back to the page cache between lots (see releasePages), so that
// a state of 100,000 messages is not all resident at once.
func (s *Store) Records(fn func(migrate.Record) error) error {
	var after []byte // the last key read
	for {
		n := 0
		err := s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketMsgs)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < recordsPerLot; k, v = c.Next() {
				var r migrate.Record
				if err := json.Unmarshal(v, &r); err != nil || r.ID == "" {
					// A damaged record is left out: its message is looked
					// for at the destination before it is copied again.
					s.badRecords++
				} else if err := fn(r); err != nil {
					return err
				}
				after = append(after[:0], k...)
				n++
			}
			return nil
		})
		release(s.path)
		if err != nil || n < recordsPerLot {
			return err
		}
	}
}

// recordsPerLot is how many records Records reads per transaction.
const recordsPerLot = 4096

// Get implements migrate.Checkpoint.
func (s *Store) Get(id string) (migrate.Record, bool, error) {
	var r migrate.Record
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &r)
	})
	return r, ok, err
}

// Put implements migrate.Checkpoint.
func (s *Store) Put(r migrate.Record) error {
	return s.PutMany([]migrate.Record{r})
}

// PutMany stores records in one transaction: one fsync for all of them.
// Either all of them survive a crash or none does. A later record with the
// same ID replaces an earlier one.
func (s *Store) PutMany(recs []migrate.Record) error {
	if s.writes++; s.writes >= releaseEvery {
		s.writes = 0
		release(s.path)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			if err := put(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

func put(tx *bolt.Tx, r migrate.Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	{
		msgs, fps := tx.Bucket(bucketMsgs), tx.Bucket(bucketFP)
		if old := msgs.Get([]byte(r.ID)); old != nil {
			var o migrate.Record
			if json.Unmarshal(old, &o) == nil && o.Fingerprint != "" && (o.Folder != r.Folder || o.Fingerprint != r.Fingerprint || !r.State.Final()) {
				k := fpKey(o.Folder, o.Fingerprint)
				if string(fps.Get(k)) == r.ID {
					fps.Delete(k)
				}
			}
		}
		if (r.State == migrate.Copied || r.State == migrate.Present) && r.Fingerprint != "" {
			if err := fps.Put(fpKey(r.Folder, r.Fingerprint), []byte(r.ID)); err != nil {
				return err
			}
		}
		return msgs.Put([]byte(r.ID), v)
	}
}

// ByFingerprint implements migrate.Checkpoint.
func (s *Store) ByFingerprint(folder, fp string) (string, bool, error) {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketFP); b != nil {
			id = string(b.Get(fpKey(folder, fp)))
		}
		return nil
	})
	return id, id != "", err
}
