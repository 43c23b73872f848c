// Package migrate is mailmove's domain: what a message, a folder and a record
// of progress are, the small interfaces a source, a destination and a
// checkpoint implement, and the pipeline that moves messages between them.
// It imports no protocol package: adapters live in sub-packages (pop3, imap)
// and in store.
package migrate

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// Entry is one message as a source lists it, before its content is read.
type Entry struct {
	// ID identifies the message within its source, stable across runs and
	// sessions (a POP3 UIDL, an mbox file and offset). Empty when the source
	// cannot tell before reading the content: the pipeline then uses the
	// content fingerprint.
	ID     string
	Folder string // the source folder; "" when the source has none (POP3)
	Size   int64  // as the source announces it; may be approximate
	Num    int    // the source's own locator (a POP3 message number)
	Offset int64  // where the message starts in its file (mbox)
	// Skip, when set, says why this message is deliberately not copied (a
	// message deleted in the old mail client): it is reported, not read.
	Skip string
	// Dest, when set, is the destination folder an earlier run chose (a
	// quarantined message tried again).
	Dest string
}

// Incoming is a message being read from a source.
type Incoming struct {
	Entry
	R     io.Reader // the content, exactly as the source holds it
	Flags []string  // IMAP flags the source knows of (`\Seen`, `$Forwarded`)
	// Date is the delivery time when the source records one (an mbox From_
	// line); zero when the pipeline must find it in the header.
	Date       time.Time
	DateSource string
	// Err is set, and R nil, when the source could not read this message
	// but can go on with the next.
	Err error
}

// Source yields the messages of a mailbox.
type Source interface {
	// List returns every message, in source order, without reading content.
	// It may be called again after an error; it connects when needed.
	List(ctx context.Context) ([]Entry, error)
	// Retrieve reads the given entries, in order, calling fn once for each with
	// an Incoming whose R is valid only until fn returns. It stops at the first
	// error fn returns and returns it. After a connection failure, calling it
	// again with the entries not yet delivered resumes.
	Retrieve(ctx context.Context, entries []Entry, fn func(*Incoming) error) error
	// Describe names the source for reports and logs, with no secret in it.
	Describe() string
	Close() error
}

// HeaderSource is a Source that can read message headers without bodies
// (POP3 TOP, an mbox read at offsets), for decisions taken before copying.
type HeaderSource interface {
	// Headers calls fn with the header of each entry it can read, in order;
	// entries it cannot read (gone, refused) are left out. The header is
	// valid only until fn returns.
	Headers(ctx context.Context, entries []Entry, fn func(Entry, []byte) error) error
}

// Deleter is a Source that can delete messages (POP3). The pipeline asks it
// to only for messages verified at the destination after the state
// recording their copy was synced.
type Deleter interface {
	// Delete removes entries in batches of at most batch, calling committed
	// with each batch the server confirmed deleting.
	Delete(ctx context.Context, entries []Entry, batch int, committed func([]Entry) error) error
}

// MailboxInfo describes a destination folder ready to receive messages.
type MailboxInfo struct {
	Name        string   // the name on the server
	UIDValidity uint32   // 0 when not known (a folder a dry-run would create)
	UIDNext     uint32   // when the folder was opened; 0 when not known
	Exists      bool     // false only in a dry-run, for a folder that would be created
	Created     bool     // created by this run
	Permanent   []string // PERMANENTFLAGS; `\*` means any keyword
	// AppendLimit is the largest message the server accepts (RFC 7889
	// APPENDLIMIT); 0 when it does not say.
	AppendLimit int64
	// FlagsUnknown: the server did not say which flags it keeps (a
	// read-only session, a folder a dry-run would create).
	FlagsUnknown bool
}

// Account is what a destination server is to the messages it receives.
type Account struct {
	// Namespace is the personal namespace (RFC 2342), under which new
	// folders are created; a server without NAMESPACE has an empty prefix.
	Namespace Namespace
	// UTF8 says 8-bit header bytes are stored as they are: the server
	// offers UTF8=ACCEPT (RFC 6855) and appends use it. Without it they are
	// encoded before sending (repair header-8bit): servers without it may
	// refuse them or, like Cyrus, store an X for each.
	UTF8 bool
	// Notes says what the user should know of the account (folders left
	// alone).
	Notes []string
}

// Existing is a message a destination folder already holds.
type Existing struct {
	UID    uint32
	Size   int64
	Header []byte // at least Message-ID, Date, From and Subject when present
}

// Outgoing is a message to append.
type Outgoing struct {
	Body  *Body
	Flags []string
	Date  time.Time
}

// Appended is where the server stored an appended message. UID is 0 when the
// server does not report it (no UIDPLUS, RFC 4315).
type Appended struct {
	UIDValidity uint32
	UID         uint32
}

// Folder is a destination folder as the server lists it.
type Folder struct {
	Name  string
	Delim rune     // the hierarchy delimiter; 0 for a flat namespace
	Attrs []string // special-use and other attributes (`\Junk`, `\Sent`)
}

// Destination is an IMAP account receiving messages.
type Destination interface {
	// Folders lists the folders the account has, with their special-use
	// attributes (RFC 6154).
	Folders(ctx context.Context) ([]Folder, error)
	// Account says what the server is to the messages it receives: where
	// new folders go, and whether it takes 8-bit headers.
	Account(ctx context.Context) (Account, error)
	// Mailbox readies a folder for appending, creating it when it is missing
	// and create is true. Idempotent.
	Mailbox(ctx context.Context, name string, create bool) (MailboxInfo, error)
	// Scan calls fn once for every message the folder holds with a UID of
	// from or more (0 or 1: every message). A folder that does not exist
	// holds nothing. fn must not call the Destination: the listing is still
	// arriving on the same connection.
	Scan(ctx context.Context, folder string, from uint32, fn func(Existing) error) error
	// FetchBody writes the whole content of one message to w; ErrNoMessage
	// when the folder has no message with that UID.
	FetchBody(ctx context.Context, folder string, uid uint32, w io.Writer) error
	// Present says which of uids a folder no longer holds, and its
	// UIDVALIDITY now (0, and every UID missing, when the folder is gone).
	Present(ctx context.Context, folder string, uids []uint32) (uidValidity uint32, missing []uint32, err error)
	// Flags returns the flags the server keeps for the given messages of a
	// folder; a message it does not hold is left out.
	Flags(ctx context.Context, folder string, uids []uint32) (map[uint32][]string, error)
	// Append stores one message. On error the message may or may not have
	// been stored (the connection can fail after the server saved it): the
	// caller must check before appending it again.
	Append(ctx context.Context, folder string, m Outgoing) (Appended, error)
	// Remove deletes exactly the given messages of a folder (undo), and
	// nothing when the folder's UIDVALIDITY is no longer uidValidity.
	Remove(ctx context.Context, folder string, uidValidity uint32, uids []uint32) error
	// Describe names the destination for reports and logs, with no secret.
	Describe() string
	Close() error
}

// Pipeliner is a Destination that can also append over connections of its
// own, many messages in flight at once.
type Pipeliner interface {
	// Pipe opens an appender of at most n connections, or returns nil when
	// the destination cannot after all (a decorator around one that cannot).
	Pipe(n int) Pipe
}

// Pipe appends batches of messages concurrently. Batches for the same folder
// are committed in the order they were sent, so the server's UIDs follow the
// source's order even when several connections carry them.
type Pipe interface {
	// Send hands over a batch, blocking while every connection is busy.
	// done is called exactly once, from another goroutine, with one result
	// per message, in order. The bodies must stay valid until then. When
	// ctx ends, the message being sent is finished and committed, and those
	// not begun are not sent: their result is ErrNotSent.
	Send(ctx context.Context, folder string, msgs []Outgoing, done func([]AppendResult))
	// Close waits for every batch sent to finish and closes the connections.
	Close() error
}

// AppendResult is the outcome of one message of a batch. Err is nil when the
// server confirmed it; a *Permanent error when the server refused it (nothing
// was stored); otherwise it may or may not have been stored.
type AppendResult struct {
	Appended
	Err error
}

// State is what happened to a source message.
type State string

const (
	// Pending: about to be appended; it may or may not be at the destination.
	Pending State = "pending"
	// Copied: appended by mailmove and acknowledged by the server.
	Copied State = "copied"
	// Present: the destination already held it (another tool, an earlier run).
	Present State = "present"
	// Duplicate: the same content was already copied to the same folder.
	Duplicate State = "duplicate"
	// Failed: not copied; retried on the next run.
	Failed State = "failed"
	// Undone: copied, then removed by `mailmove undo`; copied again by the
	// next run.
	Undone State = "undone"
	// NotSent: read, then the run was stopped before sending it; copied by
	// the next run.
	NotSent State = "not-sent"
)

// Final reports whether a message in state s needs no more work.
func (s State) Final() bool { return s == Copied || s == Present || s == Duplicate }

// Record is the checkpoint's entry for one source message. It never holds a
// secret.
type Record struct {
	ID          string `json:"id"`
	State       State  `json:"state"`
	Folder      string `json:"folder,omitempty"`
	Fingerprint string `json:"fp,omitempty"`
	Key         string `json:"key,omitempty"` // the destination-index key
	Size        int64  `json:"size,omitempty"`
	MessageID   string `json:"message_id,omitempty"`
	UIDValidity uint32 `json:"uidvalidity,omitempty"`
	UID         uint32 `json:"uid,omitempty"`
	// Floor is the folder's UIDNEXT when this run first opened it: a UID
	// below it belonged to a message there before (undo refuses it).
	Floor      uint32    `json:"uid_floor,omitempty"`
	Date       time.Time `json:"date,omitzero"`
	DateSource string    `json:"date_source,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Offset     int64     `json:"offset,omitempty"`
	Flags      []string  `json:"flags,omitempty"`   // the flags sent with it
	Repairs    []string  `json:"repairs,omitempty"` // codes of the repairs applied
	Deleted    time.Time `json:"deleted_from_source,omitzero"`
	Original   string    `json:"original,omitempty"` // where the original of a repaired message is kept
	// Altered says how the server stored the message otherwise than it
	// was sent (read back): such a copy is never taken as verified for
	// deleting the source's.
	Altered string    `json:"altered,omitempty"`
	Verdict string    `json:"verdict,omitempty"` // spam, ham, unknown
	Basis   string    `json:"verdict_basis,omitempty"`
	Run     string    `json:"run,omitempty"`
	At      time.Time `json:"at,omitzero"`
}

// Named says which mail a record is about, for a person: its Message-ID
// and date, as "<id@host>, dated 2 Jan 2024 10:04: "; "" when it has none.
func (r Record) Named() string {
	var parts []string
	if r.MessageID != "" {
		parts = append(parts, r.MessageID)
	}
	if !r.Date.IsZero() {
		parts = append(parts, "dated "+r.Date.Format("2 Jan 2006 15:04"))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ", ") + ": "
}

// Checkpoint remembers, per source message, what happened to it.
type Checkpoint interface {
	// Records calls fn for every record, in no particular order.
	Records(fn func(Record) error) error
	// Get returns the record for id, if any.
	Get(id string) (Record, bool, error)
	// Put stores r, replacing any record with its ID. When Put returns nil
	// the record survives a crash of the process or the machine.
	Put(r Record) error
	// ByFingerprint returns the ID of a message with fingerprint fp that is
	// copied or present in folder.
	ByFingerprint(folder, fp string) (string, bool, error)
	Close() error
}

// ErrReconnect is what a Source's Retrieve returns when it had to end its
// session for its own reasons (a message that would not end) after
// delivering everything before: call it again with the entries left, at
// once. It is no failure.
var ErrReconnect = errors.New("the source ended its session: go on with a new one")

// ErrNotSent is the result of a message of a batch that was never sent:
// the run was stopped first. Nothing of it reached the server.
var ErrNotSent = errors.New("not sent: the run stopped first")

// ErrNoMessage means a folder holds no message with the UID asked for
// (FetchBody).
var ErrNoMessage = errors.New("no such message")

// ErrLocked means another process is using the same checkpoint.
var ErrLocked = errors.New("another mailmove run is using this state file")

// Permanent marks an error that concerns one message only: the server refused
// it, and retrying the same bytes will fail the same way. Uncoded says the
// server gave no response code (RFC 5530) with its NO: then the trouble may
// be its own, not the message's (maddy under parallel appends: "NO
// CreateMessage (uidNext): database is locked"), so the refusal is tried
// again a few times before it is final.
type Permanent struct {
	Err     error
	Uncoded bool
}

func (e *Permanent) Error() string { return e.Err.Error() }
func (e *Permanent) Unwrap() error { return e.Err }

// FolderError is a destination folder the server will not create or open
// ("NO Invalid mailbox name", "NO Permission denied"): the messages meant for
// it fail, with the server's words, and every other folder goes on. It is
// never retried as if the network had failed.
type FolderError struct {
	Folder string
	Err    error
}

func (e *FolderError) Error() string { return e.Err.Error() }
func (e *FolderError) Unwrap() error { return e.Err }

// Fatal marks an error that no retry can mend: authentication refused, an
// untrusted certificate, a full quota.
type Fatal struct{ Err error }

func (e *Fatal) Error() string { return e.Err.Error() }
func (e *Fatal) Unwrap() error { return e.Err }
