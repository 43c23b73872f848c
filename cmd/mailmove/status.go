package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/store"
)

// Status is what a run publishes beside its state, for `mailmove status`:
// bbolt cannot be opened, not even read-only, while a run holds it.
type Status struct {
	Running     bool                      `json:"running"`
	PID         int                       `json:"pid"`
	Run         string                    `json:"run"`
	Source      string                    `json:"source"`
	Destination string                    `json:"destination"`
	Started     time.Time                 `json:"started"`
	Updated     time.Time                 `json:"updated"`
	Finished    time.Time                 `json:"finished,omitzero"`
	ToDo        int                       `json:"to_do"`
	Handled     int                       `json:"handled"` // of ToDo, read and dealt with so far
	Folders     map[string]map[string]int `json:"folders"` // destination folder → action → count
	LastError   string                    `json:"last_error,omitempty"`
	Outcome     string                    `json:"outcome,omitempty"`
}

func statusPath(statePath string) string {
	return strings.TrimSuffix(statePath, ".db") + ".status.json"
}

// statusFile is an Observer that keeps the status file current: at most
// every two seconds while messages flow, and at once at the start and end.
type statusFile struct {
	path  string
	mu    sync.Mutex
	st    Status
	saved time.Time
}

func newStatusFile(statePath, run, src, dst string) *statusFile {
	now := time.Now()
	s := &statusFile{path: statusPath(statePath), st: Status{
		Running: true, PID: os.Getpid(), Run: run, Source: src, Destination: dst,
		Started: now, Updated: now, Folders: map[string]map[string]int{},
	}}
	s.save(true)
	return s
}

func (s *statusFile) Planned(todo int, _ int64, _ int) {
	s.mu.Lock()
	s.st.ToDo = todo
	s.mu.Unlock()
	s.save(true)
}

func (s *statusFile) Message(ev migrate.Event) {
	s.mu.Lock()
	f := s.st.Folders[ev.Folder]
	if f == nil {
		f = map[string]int{}
		s.st.Folders[ev.Folder] = f
	}
	f[string(ev.Action)]++
	if ev.Action == migrate.ActFailed {
		s.st.LastError = ev.ID + ": " + ev.Reason
	}
	s.mu.Unlock()
	s.save(false)
}

func (s *statusFile) Note(string) {}

// Progress keeps the file moving message by message (at most every two
// seconds), not only when a batch is confirmed.
func (s *statusFile) Progress(n int, _ int64) {
	s.mu.Lock()
	s.st.Handled = n
	s.mu.Unlock()
	s.save(false)
}

// finish records the end of the run.
func (s *statusFile) finish(sum migrate.Summary, err error) {
	s.mu.Lock()
	s.st.Running, s.st.Finished = false, time.Now()
	switch {
	case errors.Is(err, context.Canceled):
		s.st.Outcome = "interrupted (Ctrl-C, a signal or --until): run the same command again to carry on"
	case err != nil:
		s.st.LastError, s.st.Outcome = err.Error(), "stopped"
	case sum.Failed > 0:
		s.st.Outcome = fmt.Sprintf("finished; %d message(s) not copied", sum.Failed)
	default:
		s.st.Outcome = "finished"
	}
	s.mu.Unlock()
	s.save(true)
}

// save writes the file atomically (a temporary file renamed over it), owner
// readable only.
func (s *statusFile) save(now bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !now && time.Since(s.saved) < 2*time.Second {
		return
	}
	s.st.Updated = time.Now()
	data, _ := json.MarshalIndent(s.st, "", "  ")
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".status-*")
	if err != nil {
		return
	}
	tmp.Write(append(data, '\n'))
	tmp.Close()
	if os.Rename(tmp.Name(), s.path) != nil {
		os.Remove(tmp.Name())
	}
	s.saved = time.Now()
}

func readStatus(statePath string) (Status, bool) {
	var st Status
	data, err := os.ReadFile(statusPath(statePath))
	if err != nil {
		return st, false
	}
	return st, json.Unmarshal(data, &st) == nil
}

// showStatus prints where a migration stands: from the state when no run
// holds it, else from the status file the running migration keeps.
func (m *Main) showStatus(w io.Writer, statePath string) error {
	st, haveStatus := readStatus(statePath)
	s, err := store.Open(statePath, true)
	switch {
	case errors.Is(err, migrate.ErrLocked):
		if !haveStatus {
			fmt.Fprintf(w, "a migration is running on %s (no status published yet)\n", statePath)
			return nil
		}
		fmt.Fprintf(w, "running since %s (pid %d, run %s), status of %s\n%s → %s\n",
			st.Started.Local().Format("2006-01-02 15:04"), st.PID, st.Run, st.Updated.Local().Format("15:04:05"), st.Source, st.Destination)
		printFolders(w, st.Folders, "this run")
		if st.ToDo > 0 {
			fmt.Fprintf(w, "progress: %d of %d messages to read this run read and handed over\n", min(st.Handled, st.ToDo), st.ToDo)
		}
		if st.LastError != "" {
			fmt.Fprintln(w, "last error:", st.LastError)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(w, "no migration yet: %s does not exist\n", statePath)
		return nil
	case err != nil:
		return err
	}
	defer s.Close()
	folders := map[string]map[string]int{}
	var lastFail migrate.Record
	err = s.Records(func(r migrate.Record) error {
		f := folders[r.Folder]
		if f == nil {
			f = map[string]int{}
			folders[r.Folder] = f
		}
		f[string(r.State)]++
		if r.State == migrate.Failed && r.At.After(lastFail.At) {
			lastFail = r
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "not running; state %s\n", statePath)
	switch {
	case haveStatus && st.Finished.IsZero():
		fmt.Fprintf(w, "last run %s: %s → %s, did not finish (killed, or the machine stopped): last news at %s; run the same command again to carry on\n",
			st.Run, st.Source, st.Destination, st.Updated.Local().Format("2006-01-02 15:04"))
	case haveStatus:
		fmt.Fprintf(w, "last run %s: %s → %s, ended %s: %s\n", st.Run, st.Source, st.Destination, st.Finished.Local().Format("2006-01-02 15:04"), st.Outcome)
	}
	printFolders(w, folders, "recorded")
	switch {
	case lastFail.ID != "":
		fmt.Fprintf(w, "last error: %s: %s\n", lastFail.ID, lastFail.Reason)
	case haveStatus && st.LastError != "":
		fmt.Fprintln(w, "last error:", st.LastError)
	}
	return nil
}

func printFolders(w io.Writer, folders map[string]map[string]int, what string) {
	names := slices.Sorted(maps.Keys(folders))
	fmt.Fprintf(w, "%-28s  %s\n", "FOLDER", "MESSAGES ("+what+")")
	for _, n := range names {
		keys := slices.Sorted(maps.Keys(folders[n]))
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, folders[n][k]))
		}
		name := n
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(w, "%-28s  %s\n", clipRunes(name, 28), strings.Join(parts, ", "))
	}
}
