package migrate

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mailmove/mailmove/mime"
)

// VerifyMissing is a source message that is not at the destination.
type VerifyMissing struct {
	ID     string `json:"id"`
	Folder string `json:"folder,omitempty"`
	Reason string `json:"reason"`
}

// VerifyFolder reconciles one destination folder.
type VerifyFolder struct {
	Folder   string `json:"folder"`
	Source   int    `json:"source"`   // source messages meant for it
	Recorded int    `json:"recorded"` // of those, recorded as done in the state
	Present  int    `json:"present"`  // of those, found at the destination now
}

// Reconciliation compares source, state and destination.
type Reconciliation struct {
	Source      string          `json:"source"`
	Destination string          `json:"destination"`
	Folders     []VerifyFolder  `json:"folders"`
	Listed      int             `json:"listed"`
	Skipped     int             `json:"skipped"` // deliberately not copied (deleted in the old client)
	Verified    int             `json:"verified"`
	Missing     []VerifyMissing `json:"missing,omitempty"`
	// VerifiedIDs and VerifiedEntries are the messages found at the
	// destination, for callers that act on them (deleting from the source).
	VerifiedIDs     map[string]bool `json:"-"`
	VerifiedEntries []Entry         `json:"-"`
	// Stay are messages verified there that DeleteVerified leaves on the
	// source all the same, with why.
	Stay  []VerifyMissing   `json:"kept_on_source,omitempty"`
	where map[string]uint32 // UID found, by ID

	// With content checked (VerifyContent): each copied message fetched
	// and compared byte for byte with what the source holds now.
	ContentChecked int           `json:"content_checked,omitempty"`
	ContentSame    int           `json:"content_same,omitempty"`
	Differences    []ContentDiff `json:"content_differences,omitempty"`
}

// ContentDiff is a message whose stored content is not what mailmove sent.
type ContentDiff struct {
	ID     string      `json:"id"`
	Folder string      `json:"folder"`
	UID    uint32      `json:"uid"`
	Diff   *Difference `json:"difference,omitempty"`
	Reason string      `json:"reason,omitempty"` // when it could not be compared
}

// Complete reports whether every source message is at the destination.
func (r Reconciliation) Complete() bool { return len(r.Missing) == 0 }

// Verify lists src and checks each message against cp and dst: recorded as
// done, and present now in the folder it was copied to, found by Message-ID
// and size or by content fingerprint (a message without a Message-ID is
// fetched and compared). It writes nothing.
func Verify(ctx context.Context, src Source, dst Destination, cp Checkpoint) (Reconciliation, error) {
	rec := Reconciliation{Source: src.Describe(), Destination: dst.Describe(), VerifiedIDs: map[string]bool{}, where: map[string]uint32{}}
	entries, err := src.List(ctx)
	if err != nil {
		return rec, err
	}
	rec.Listed = len(entries)
	folders := map[string]*VerifyFolder{}
	idx := map[string]*folderIndex{}
	check := func(e Entry) error {
		r, ok, err := cp.Get(e.ID)
		if err != nil {
			return fmt.Errorf("read state: %w", err)
		}
		folder := r.Folder
		vf := folders[folder]
		if vf == nil {
			vf = &VerifyFolder{Folder: folder}
			folders[folder] = vf
		}
		vf.Source++
		if !ok || !r.State.Final() {
			reason := "not copied yet"
			if ok {
				reason = fmt.Sprintf("%snot copied: %s (%s)", r.Named(), r.State, r.Reason)
			}
			rec.Missing = append(rec.Missing, VerifyMissing{ID: e.ID, Folder: folder, Reason: reason})
			return nil
		}
		vf.Recorded++
		ix := idx[folder]
		if ix == nil {
			if ix, err = buildIndex(ctx, dst, folder); err != nil {
				return err
			}
			idx[folder] = ix
		}
		uid, found, err := ix.find(ctx, dst, folder, r.Key, r.MessageID != "", r.Size, r.Fingerprint)
		if err != nil {
			return err
		}
		if !found {
			rec.Missing = append(rec.Missing, VerifyMissing{ID: e.ID, Folder: folder,
				Reason: fmt.Sprintf("%srecorded as %s but not in %s now (deleted there?)", r.Named(), r.State, folder)})
			return nil
		}
		vf.Present++
		rec.Verified++
		rec.VerifiedIDs[e.ID] = true
		rec.where[e.ID] = uid
		rec.VerifiedEntries = append(rec.VerifiedEntries, e)
		return nil
	}
	var anon []Entry // no ID of their own: named by their content, as the run does
	for _, e := range entries {
		if e.Skip != "" {
			rec.Skipped++
			continue
		}
		if err := ctx.Err(); err != nil {
			return rec, err
		}
		if e.ID == "" {
			anon = append(anon, e)
			continue
		}
		if err := check(e); err != nil {
			return rec, err
		}
	}
	if len(anon) > 0 {
		err := src.Retrieve(ctx, anon, func(in *Incoming) error {
			if in.Err != nil {
				rec.Missing = append(rec.Missing, VerifyMissing{ID: fmt.Sprintf("num:%d", in.Num),
					Reason: fmt.Sprintf("message %d has no ID of its own and could not be read to be named by its content: %v", in.Num, in.Err)})
				return nil
			}
			f := mime.NewFingerprinter()
			if _, err := io.Copy(f, in.R); err != nil {
				return err
			}
			e := in.Entry
			e.ID = "fp:" + f.Sum().String()
			return check(e)
		})
		if err != nil {
			return rec, err
		}
	}
	for _, f := range folders {
		rec.Folders = append(rec.Folders, *f)
	}
	sort.Slice(rec.Folders, func(i, j int) bool { return rec.Folders[i].Folder < rec.Folders[j].Folder })
	return rec, nil
}

// DeleteVerified deletes from a source that can (POP3) the messages Verify
// finds at the destination, and only those, in batches of batch, recording
// each committed deletion in cp. The verification runs after the records of
// the copies were synced (Checkpoint.Put returns only then). With dryRun
// nothing is deleted: the messages that would be are returned.
func DeleteVerified(ctx context.Context, src Source, dst Destination, cp Checkpoint, batch int, dryRun bool) (Reconciliation, []Entry, error) {
	d, ok := src.(Deleter)
	if !ok {
		return Reconciliation{}, nil, &Fatal{Err: fmt.Errorf("%s cannot delete messages: --delete-after-verify is for POP3 sources", src.Describe())}
	}
	rec, err := Verify(ctx, src, dst, cp)
	if err != nil {
		return rec, nil, err
	}
	// Verified, but left on the source all the same: a copy the server
	// altered is not the message, and one named by its content has no
	// number that holds from one session to the next.
	var todo []Entry
	for _, e := range rec.VerifiedEntries {
		r, _, err := cp.Get(e.ID)
		if err != nil {
			return rec, nil, fmt.Errorf("read state: %w", err)
		}
		switch {
		case r.Altered != "":
			rec.Stay = append(rec.Stay, VerifyMissing{ID: e.ID, Folder: r.Folder,
				Reason: "stored altered by the server (" + r.Altered + "): the copy is not the message"})
		case strings.HasPrefix(e.ID, "fp:"):
			rec.Stay = append(rec.Stay, VerifyMissing{ID: e.ID, Folder: r.Folder,
				Reason: "the server gives it no UIDL of its own, so it cannot be deleted safely in a later session"})
		default:
			todo = append(todo, e)
		}
	}
	if dryRun {
		return rec, todo, nil
	}
	var deleted []Entry
	err = d.Delete(ctx, todo, batch, func(batch []Entry) error {
		now := time.Now()
		for _, e := range batch {
			r, ok, err := cp.Get(e.ID)
			if err != nil {
				return fmt.Errorf("read state: %w", err)
			}
			if ok {
				r.Deleted = now
				if err := cp.Put(r); err != nil {
					return fmt.Errorf("write state: %w", err)
				}
			}
		}
		deleted = append(deleted, batch...)
		return nil
	})
	return rec, deleted, err
}

// VerifyContent fetches every message Verify found that mailmove copied and
// compares it, byte for byte, with what mailmove sends for the source's
// message now: the source's bytes with CRLF line breaks, repaired as the
// record says it was. Every difference is named in rec.Differences.
// Messages found there but put by another tool or run (present) are left:
// their match is by content fingerprint.
func VerifyContent(ctx context.Context, src Source, dst Destination, cp Checkpoint, rec *Reconciliation, spoolDir string) error {
	var todo []Entry
	for _, e := range rec.VerifiedEntries {
		if r, ok, _ := cp.Get(e.ID); ok && r.State == Copied {
			todo = append(todo, e)
		}
	}
	return src.Retrieve(ctx, todo, func(in *Incoming) error {
		r, _, err := cp.Get(in.ID)
		if err != nil {
			return fmt.Errorf("read state: %w", err)
		}
		uid := rec.where[in.ID]
		if in.Err != nil {
			rec.Differences = append(rec.Differences, ContentDiff{ID: in.ID, Folder: r.Folder, UID: uid, Reason: "not compared: " + in.Err.Error()})
			return nil
		}
		want, err := expected(in.R, r, spoolDir)
		if err != nil {
			return err
		}
		defer want.Release()
		rec.ContentChecked++
		d, err := Compare(ctx, dst, r.Folder, uid, want)
		if err != nil {
			return err
		}
		if d == nil {
			rec.ContentSame++
			return nil
		}
		rec.Differences = append(rec.Differences, ContentDiff{ID: in.ID, Folder: r.Folder, UID: uid, Diff: d})
		return nil
	})
}

// expected is what mailmove sends for a source message with record r.
func expected(src io.Reader, r Record, spoolDir string) (*Body, error) {
	sw := &spoolWriter{dir: spoolDir, limit: 1 << 20}
	cw := &mime.CRLFWriter{W: sw}
	if _, err := io.Copy(cw, src); err != nil {
		sw.abort()
		return nil, err
	}
	if err := cw.Close(); err != nil {
		sw.abort()
		return nil, err
	}
	body, err := sw.body()
	if err != nil || len(r.Repairs) == 0 {
		return body, err
	}
	opts := mime.RepairOptions{Date: r.Date}
	for _, c := range r.Repairs {
		switch c {
		case "header-8bit":
			opts.EncodeHeaders = true
		case "long-lines":
			opts.FoldLines = true
		case "multipart-unclosed":
			opts.CloseParts = true
		}
	}
	if body.Size() > mime.StreamAbove {
		out := &spoolWriter{dir: spoolDir, limit: 1 << 20, hint: body.Size()}
		res, err := mime.RepairTo(body.ReaderAt(), body.Size(), opts, out)
		if err != nil || !res.Changed {
			out.abort()
			return body, nil // sent as it was
		}
		body.Release()
		return out.body()
	}
	defer body.Release()
	data, err := io.ReadAll(body.Open())
	if err != nil {
		return nil, err
	}
	return BodyFromBytes(mime.Repair(data, opts).Msg), nil
}
