package migrate

import (
	"time"

	"github.com/mailmove/mailmove/mime"
)

// Action is what the pipeline did, or in a dry-run would do, with a message.
type Action string

const (
	ActCopied      Action = "copied"
	ActWouldCopy   Action = "would-copy"   // dry-run
	ActAlreadyDone Action = "already-done" // the checkpoint says so: not even downloaded
	ActPresent     Action = "present"      // the destination already holds it
	ActDuplicate   Action = "duplicate"    // same content as another message of this migration
	ActFailed      Action = "failed"       // not copied: see Reason; kept locally
	ActSkipped     Action = "skipped"      // deliberately not copied: see Reason (deleted in the old client)
	ActMissing     Action = "missing"      // recorded as copied, no longer at the destination; --recopy-missing copies it again
)

// Event reports the decision taken for one message.
type Event struct {
	Seq         int             `json:"seq"`
	ID          string          `json:"id"`
	Action      Action          `json:"action"`
	Reason      string          `json:"reason,omitempty"`
	Folder      string          `json:"folder,omitempty"`
	Size        int64           `json:"size,omitempty"`
	Date        time.Time       `json:"date,omitzero"`
	DateSource  string          `json:"date_source,omitempty"`
	Flags       []string        `json:"flags,omitempty"`
	Dropped     []string        `json:"dropped_flags,omitempty"`
	MessageID   string          `json:"message_id,omitempty"`
	Subject     string          `json:"subject,omitempty"`
	UID         uint32          `json:"uid,omitempty"`
	Fingerprint string          `json:"fingerprint,omitempty"`
	Verdict     string          `json:"verdict,omitempty"` // spam, ham, unknown
	Spam        string          `json:"spam_reason,omitempty"`
	Evidence    []mime.Evidence `json:"spam_evidence,omitempty"`
	Repairs     []mime.Finding  `json:"repairs,omitempty"`
	Original    string          `json:"original,omitempty"`    // the kept original of a repaired message
	RepairDiff  []string        `json:"repair_diff,omitempty"` // header fields removed and added, body size
	// Altered says how the server changed the message as it stored it:
	// what it holds is not what was sent (see Difference).
	Altered *Difference `json:"altered,omitempty"`
}

// Summary counts what a run did.
type Summary struct {
	Source         string         `json:"source"`
	Destination    string         `json:"destination"`
	Run            string         `json:"run"`
	DryRun         bool           `json:"dry_run"`
	KeepDuplicates bool           `json:"keep_duplicates"`
	Listed         int            `json:"listed"`
	Copied         int            `json:"copied"`
	AlreadyDone    int            `json:"already_done"`
	Present        int            `json:"present"`
	Duplicates     int            `json:"duplicates"`
	Failed         int            `json:"failed"`
	Skipped        int            `json:"skipped"`
	Reconciled     int            `json:"reconciled_pending"`
	Bytes          int64          `json:"bytes"`
	Elapsed        time.Duration  `json:"elapsed_ns"`
	Interrupted    bool           `json:"interrupted"`
	Notes          []string       `json:"notes,omitempty"`
	Folders        []FolderPlan   `json:"folders,omitempty"`
	SpamPolicy     string         `json:"spam_policy,omitempty"`
	JunkFolder     string         `json:"junk_folder,omitempty"`
	Verdicts       map[string]int `json:"verdicts,omitempty"` // messages by verdict and evidence
	Guarded        []string       `json:"spam_guarded_folders,omitempty"`
	Repairs        map[string]int `json:"repairs,omitempty"` // messages copied by repair code
	// Altered counts messages the server stored otherwise than sent, found
	// by reading back the kinds of message servers alter.
	Altered int `json:"altered"`
	// Checked counts messages read back after their append and found as sent.
	Checked int `json:"read_back"`
	// Confirmed counts messages done in earlier runs whose copies were
	// found, by UIDVALIDITY and UID, where they were recorded; Missing those
	// no longer there and not copied again.
	Confirmed int `json:"confirmed_at_destination"`
	Missing   int `json:"missing_at_destination"`
}

// Rate returns messages copied per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Copied) / s.Elapsed.Seconds()
}

// Observer is told of the run's progress. Calls come from one goroutine.
type Observer interface {
	// Planned is called once the source is listed: messages and bytes still
	// to read, and how many the checkpoint already has done.
	Planned(todo int, bytes int64, done int)
	// Message is called once per source message with the decision taken.
	Message(Event)
	// Note reports something the user should know about the whole run.
	Note(string)
	// Progress is called after each message the run has read and dealt
	// with (decided, repaired, handed to the destination: its Message may
	// come later, when the server confirms its batch), with how many of
	// the planned messages and of their announced bytes that makes: the
	// pace of the run, message by message.
	Progress(handled int, bytes int64)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) Planned(int, int64, int) {}
func (NopObserver) Message(Event)           {}
func (NopObserver) Note(string)             {}
func (NopObserver) Progress(int, int64)     {}
