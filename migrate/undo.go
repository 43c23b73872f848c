package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mailmove/mailmove/mime"
)

// UndoPlan is what one run appended, by folder: the messages an undo
// removes.
type UndoPlan struct {
	Run     string
	Folders map[string][]Record // copied by the run, with their UIDs
	NoUID   int                 // copied by the run, but the server gave no UID: cannot be removed safely
}

// Count is how many messages the undo removes.
func (p UndoPlan) Count() int {
	n := 0
	for _, recs := range p.Folders {
		n += len(recs)
	}
	return n
}

// PlanUndo finds in cp what run appended.
func PlanUndo(cp Checkpoint, run string) (UndoPlan, error) {
	p := UndoPlan{Run: run, Folders: map[string][]Record{}}
	err := cp.Records(func(r Record) error {
		if r.Run != run || r.State != Copied {
			return nil
		}
		if r.UID == 0 || r.UIDValidity == 0 {
			p.NoUID++
			return nil
		}
		p.Folders[r.Folder] = append(p.Folders[r.Folder], r)
		return nil
	})
	return p, err
}

// RunInfo is one run as the state remembers it.
type RunInfo struct {
	ID     string
	Copied int // messages it copied that are still recorded as copied
	Last   time.Time
}

// Runs lists the runs that copied messages still recorded as copied, the
// latest first.
func Runs(cp Checkpoint) ([]RunInfo, error) {
	by := map[string]*RunInfo{}
	err := cp.Records(func(r Record) error {
		if r.State != Copied || r.Run == "" {
			return nil
		}
		ri := by[r.Run]
		if ri == nil {
			ri = &RunInfo{ID: r.Run}
			by[r.Run] = ri
		}
		ri.Copied++
		if r.At.After(ri.Last) {
			ri.Last = r.At
		}
		return nil
	})
	out := make([]RunInfo, 0, len(by))
	for _, ri := range by {
		out = append(out, *ri)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out, err
}

// UndoRefusal is a recorded copy undo would not remove: nothing proves the
// UID the server gave is that message (a server that reported another
// message's UID would have the user's own mail deleted).
type UndoRefusal struct {
	ID     string `json:"id"`
	Folder string `json:"folder"`
	UID    uint32 `json:"uid"`
	Reason string `json:"reason"`
}

// Undo removes from dst the messages of plan, folder by folder, by their
// recorded UIDs and only where UIDVALIDITY still matches, then records them
// Undone so that a later run copies them again. Before anything is removed
// each UID is confirmed: a UID two records claim, one below the folder's
// UIDNEXT before the run appended (the message was there before), or one
// whose message has not the recorded size and identity (Message-ID, or
// Date, From and Subject) is refused, and listed, not removed.
func Undo(ctx context.Context, dst Destination, cp Checkpoint, plan UndoPlan) (int, []UndoRefusal, error) {
	folders := make([]string, 0, len(plan.Folders))
	for f := range plan.Folders {
		folders = append(folders, f)
	}
	sort.Strings(folders)
	removed := 0
	var refused []UndoRefusal
	var errs []error // one folder that fails does not stop the others
	for _, f := range folders {
		// A folder deleted and created again (another UIDVALIDITY) numbers
		// its messages afresh: the recorded UIDs may now be the user's.
		info, err := dst.Mailbox(ctx, f, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("undo in %s: %w", f, err))
			continue
		}
		var kept []Record
		for _, r := range plan.Folders[f] {
			if r.UIDValidity != 0 && info.UIDValidity != 0 && r.UIDValidity != info.UIDValidity {
				refused = append(refused, UndoRefusal{ID: r.ID, Folder: f, UID: r.UID,
					Reason: fmt.Sprintf("the folder was recreated since (UIDVALIDITY %d, recorded %d): its UIDs are not the ones mailmove was given", info.UIDValidity, r.UIDValidity)})
				continue
			}
			kept = append(kept, r)
		}
		if len(kept) == 0 {
			continue
		}
		held := map[uint32]Existing{}
		if err := dst.Scan(ctx, f, 0, func(x Existing) error {
			x.Header = append([]byte(nil), x.Header...)
			held[x.UID] = x
			return nil
		}); err != nil {
			errs = append(errs, fmt.Errorf("undo in %s: %w", f, err))
			continue
		}
		claims := map[uint32]int{}
		for _, r := range kept {
			claims[r.UID]++
		}
		byValidity := map[uint32][]Record{}
		for _, r := range kept {
			why := ""
			x, there := held[r.UID]
			switch {
			case claims[r.UID] > 1:
				why = fmt.Sprintf("the server gave UID %d to %d messages", r.UID, claims[r.UID])
			case r.Floor > 0 && r.UID < r.Floor:
				why = fmt.Sprintf("UID %d is below the UIDNEXT %d the folder had before this run appended: that message was there before", r.UID, r.Floor)
			case !there:
				why = "no message has that UID now (deleted there already?)"
			case x.Size != r.Size || IndexKey(mime.ParseHeader(x.Header)) != r.Key:
				why = fmt.Sprintf("the message with UID %d is not the one recorded (size %d, recorded %d, or another Message-ID)", r.UID, x.Size, r.Size)
			}
			if why != "" {
				refused = append(refused, UndoRefusal{ID: r.ID, Folder: f, UID: r.UID, Reason: why})
				continue
			}
			byValidity[r.UIDValidity] = append(byValidity[r.UIDValidity], r)
		}
		for v, recs := range byValidity {
			uids := make([]uint32, len(recs))
			for i, r := range recs {
				uids[i] = r.UID
			}
			if err := dst.Remove(ctx, f, v, uids); err != nil {
				errs = append(errs, fmt.Errorf("undo in %s: %w", f, err))
				continue
			}
			for _, r := range recs {
				r.State, r.UID, r.Reason = Undone, 0, "removed by mailmove undo of run "+plan.Run
				if err := cp.Put(r); err != nil {
					return removed, refused, fmt.Errorf("write state: %w", err)
				}
				removed++
			}
		}
	}
	return removed, refused, errors.Join(errs...)
}
