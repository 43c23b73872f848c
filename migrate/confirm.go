package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

type folderValidity struct {
	folder   string
	validity uint32
}

// confirmDone checks, before anything is said to be done, that the
// destination still holds what the state records as copied there: per
// folder, its UIDVALIDITY and which of the recorded UIDs are still there
// (one SELECT and one UID SEARCH). A folder recreated since (UIDVALIDITY
// changed) has its messages looked for again and copied where missing. A
// message deleted at the destination is reported, and copied again only
// with RecopyMissing: the user may have deleted it on purpose.
func (r *runner) confirmDone(ctx context.Context, held map[folderValidity][]uint32) error {
	keys := make([]folderValidity, 0, len(held))
	for k := range held {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].folder != keys[j].folder {
			return keys[i].folder < keys[j].folder
		}
		return keys[i].validity < keys[j].validity
	})
	stale := map[folderValidity]bool{}           // recreated: every record again
	gone := map[folderValidity]map[uint32]bool{} // deleted there
	for _, k := range keys {
		uids := held[k]
		var validity uint32
		var missing []uint32
		err := r.withRetry(ctx, func() error {
			var err error
			validity, missing, err = r.dst.Present(ctx, k.folder, uids)
			return err
		})
		var ferr *FolderError
		if errors.As(err, &ferr) {
			r.note("could not check what %q holds (%v): its %d message(s) recorded as copied are taken as there", k.folder, ferr.Err, len(uids))
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case validity == 0:
			r.note("folder %q is gone from the destination: its %d message(s) recorded as copied are looked for again and copied where missing", k.folder, len(uids))
			stale[k] = true
		case validity != k.validity:
			r.note("folder %q was recreated at the destination since (UIDVALIDITY %d, recorded %d): its %d message(s) are looked for again and copied where missing",
				k.folder, validity, k.validity, len(uids))
			stale[k] = true
		default:
			r.sum.Confirmed += len(uids) - len(missing)
			if len(missing) > 0 {
				set := make(map[uint32]bool, len(missing))
				for _, u := range missing {
					set[u] = true
				}
				gone[k] = set
			}
		}
	}
	if len(stale) == 0 && len(gone) == 0 {
		return nil
	}
	byFolder := map[string]int{}
	err := r.cp.Records(func(rec Record) error {
		k := folderValidity{rec.Folder, rec.UIDValidity}
		switch {
		case !rec.State.Final() || rec.UID == 0:
		case stale[k]:
			delete(r.done, rec.ID)
		case gone[k][rec.UID]:
			byFolder[rec.Folder]++
			if r.opt.RecopyMissing {
				delete(r.done, rec.ID)
				return nil
			}
			if r.missing == nil {
				r.missing = map[string]string{}
			}
			r.missing[rec.ID] = fmt.Sprintf("recorded as copied to %s (UID %d) but no longer there (deleted there?); --recopy-missing copies it again", rec.Folder, rec.UID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	folders := make([]string, 0, len(byFolder))
	for f := range byFolder {
		folders = append(folders, f)
	}
	sort.Strings(folders)
	for _, f := range folders {
		if r.opt.RecopyMissing {
			r.note("%d message(s) recorded as copied are no longer in %q: copied again (--recopy-missing)", byFolder[f], f)
		} else {
			r.note("%d message(s) recorded as copied are no longer in %q (deleted there?): not copied again; --recopy-missing copies them again", byFolder[f], f)
		}
	}
	return nil
}
