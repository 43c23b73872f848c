package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Quarantined is a message a DirKeeper holds: its record, with the reason,
// and the file with its content.
type Quarantined struct {
	Record Record
	File   string // the .eml
}

// ListQuarantine reads what a DirKeeper directory holds, oldest first. A
// directory that does not exist holds nothing.
func ListQuarantine(dir string) ([]Quarantined, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Quarantined
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var rec Record
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		eml := strings.TrimSuffix(n, ".json") + ".eml"
		if _, err := os.Stat(eml); err != nil {
			return nil, fmt.Errorf("%s has no message beside it: %w", n, err)
		}
		out = append(out, Quarantined{Record: rec, File: eml})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Record.At.Before(out[j].Record.At) })
	return out, nil
}

// QuarantineSource offers the quarantined messages of a directory to the
// pipeline again, each for the folder an earlier run chose, under its
// original ID: `mailmove quarantine retry`, once the user has fixed the
// cause (freed quota, edited the .eml). The .eml is read as it is now.
type QuarantineSource struct {
	Dir   string
	items map[string]Quarantined
}

var _ Source = (*QuarantineSource)(nil)

// List implements Source.
func (q *QuarantineSource) List(context.Context) ([]Entry, error) {
	items, err := ListQuarantine(q.Dir)
	if err != nil {
		return nil, &Fatal{Err: err}
	}
	q.items = map[string]Quarantined{}
	var out []Entry
	for _, it := range items {
		st, err := os.Stat(it.File)
		if err != nil {
			return nil, &Fatal{Err: err}
		}
		q.items[it.Record.ID] = it
		out = append(out, Entry{ID: it.Record.ID, Dest: it.Record.Folder, Size: st.Size()})
	}
	return out, nil
}

// Retrieve implements Source.
func (q *QuarantineSource) Retrieve(ctx context.Context, entries []Entry, fn func(*Incoming) error) error {
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, ok := q.items[e.ID]
		if !ok {
			return &Fatal{Err: errors.New("not a listed quarantined message: " + e.ID)}
		}
		f, err := os.Open(it.File)
		if err != nil {
			return &Fatal{Err: err}
		}
		err = fn(&Incoming{Entry: e, R: f, Flags: it.Record.Flags, Date: it.Record.Date, DateSource: it.Record.DateSource})
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Describe implements Source.
func (q *QuarantineSource) Describe() string { return "quarantine:" + q.Dir }

// Close implements Source.
func (q *QuarantineSource) Close() error { return nil }

// Release removes from the quarantine the messages cp now records as done,
// and returns how many it removed.
func (q *QuarantineSource) Release(cp Checkpoint) (int, error) {
	n := 0
	for id, it := range q.items {
		rec, ok, err := cp.Get(id)
		if err != nil {
			return n, err
		}
		if ok && rec.State.Final() {
			os.Remove(it.File)
			os.Remove(strings.TrimSuffix(it.File, ".eml") + ".json")
			n++
		}
	}
	return n, nil
}
