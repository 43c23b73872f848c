package migrate

import (
	"context"
	"fmt"
	"sort"
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

// Undo removes from dst the messages of plan, folder by folder, by their
// recorded UIDs and only where UIDVALIDITY still matches, then records them
// Undone so that a later run copies them again.
func Undo(ctx context.Context, dst Destination, cp Checkpoint, plan UndoPlan) (int, error) {
	folders := make([]string, 0, len(plan.Folders))
	for f := range plan.Folders {
		folders = append(folders, f)
	}
	sort.Strings(folders)
	removed := 0
	for _, f := range folders {
		byValidity := map[uint32][]Record{}
		for _, r := range plan.Folders[f] {
			byValidity[r.UIDValidity] = append(byValidity[r.UIDValidity], r)
		}
		for v, recs := range byValidity {
			uids := make([]uint32, len(recs))
			for i, r := range recs {
				uids[i] = r.UID
			}
			if err := dst.Remove(ctx, f, v, uids); err != nil {
				return removed, fmt.Errorf("undo in %s: %w", f, err)
			}
			for _, r := range recs {
				r.State, r.UID, r.Reason = Undone, 0, "removed by mailmove undo of run "+plan.Run
				if err := cp.Put(r); err != nil {
					return removed, fmt.Errorf("write state: %w", err)
				}
				removed++
			}
		}
	}
	return removed, nil
}
