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
// with RecopyMissing: the user may have deleted it on purpose. Messages
// appended to a server without UIDPLUS have no UID recorded: they are
// looked for by their index key (Message-ID, or Date, From and Subject) in
// one header pass of their folder, kept for the rest of the run.
func (r *runner) confirmDone(ctx context.Context, held map[folderValidity][]uint32, keyed map[string]map[string]int) error {
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
	short := map[string]map[string]int{} // folder, key: how many records the folder lacks
	folders := make([]string, 0, len(keyed))
	for f := range keyed {
		folders = append(folders, f)
	}
	sort.Strings(folders)
	for _, f := range folders {
		ix := r.idx[f]
		if ix == nil {
			err := r.withRetry(ctx, func() error {
				var err error
				ix, err = buildIndex(ctx, r.dst, f)
				return err
			})
			var ferr *FolderError
			if errors.As(err, &ferr) {
				r.note("could not check what %q holds (%v): its messages recorded as copied are taken as there", f, ferr.Err)
				continue
			}
			if err != nil {
				return err
			}
			r.idx[f] = ix
		}
		for key, n := range keyed[f] {
			have := len(ix.candidates(key))
			r.sum.Confirmed += min(n, have)
			if have < n {
				if short[f] == nil {
					short[f] = map[string]int{}
				}
				short[f][key] = n - have
			}
		}
	}
	if len(stale) == 0 && len(gone) == 0 && len(short) == 0 {
		return nil
	}
	byFolder := map[string]int{}
	err := r.cp.Records(func(rec Record) error {
		k := folderValidity{rec.Folder, rec.UIDValidity}
		where := fmt.Sprintf("(UID %d)", rec.UID)
		lacking := rec.UID == 0 && rec.State == Copied && short[rec.Folder][rec.Key] > 0
		if lacking {
			short[rec.Folder][rec.Key]--
			where = "(no UID: the server has no UIDPLUS; looked for by " + keyWhat(rec) + ")"
		}
		switch {
		case !rec.State.Final() || rec.UID == 0 && !lacking:
		case stale[k]:
			delete(r.done, rec.ID)
		case lacking || gone[k][rec.UID]:
			byFolder[rec.Folder]++
			if r.opt.RecopyMissing {
				delete(r.done, rec.ID)
				return nil
			}
			if r.missing == nil {
				r.missing = map[string]string{}
			}
			r.missing[rec.ID] = fmt.Sprintf("%srecorded as copied to %s %s but no longer there (deleted there?); --recopy-missing copies it again", rec.Named(), rec.Folder, where)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	folders = folders[:0]
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

// keyWhat says what a record's index key is made of.
func keyWhat(rec Record) string {
	if rec.MessageID != "" {
		return "its Message-ID"
	}
	return "its Date, From and Subject"
}
