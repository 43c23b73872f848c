package migrate

import (
	"context"
	"slices"
	"strings"
)

// readBack checks what the server stored for messages it has just
// confirmed (apps[i] for jobs[i]), where that is worth a round trip:
//   - content, byte for byte, for a message of a kind servers are known to
//     alter (j.risky) and for the first message of each folder, a sample
//     that catches a server altering everything;
//   - keywords, for the messages sent with keywords in a folder seen once,
//     and then in every folder where the server removed some (mox's junk
//     filter takes $NotJunk off what is appended to its inbox), so that the
//     report says what the server kept, not what was asked.
//
// It never fails the run: a message that cannot be read back is noted.
func (r *runner) readBack(ctx context.Context, jobs []*job, apps []Appended) {
	if r.opt.DryRun {
		return
	}
	byFolder := map[string][]uint32{}
	for i, j := range jobs {
		uid, folder := apps[i].UID, j.rec.Folder
		if uid == 0 {
			continue // no UIDPLUS: nothing says which message it is
		}
		if ctx.Err() != nil {
			// Stopped: what was not read back yet is left to verify.
			if j.risky {
				r.noteOnce("read back stopped", "the run was stopped before every message of a kind servers alter was read back: mailmove verify --content checks them all")
			}
			continue
		}
		if j.risky || !r.checked[folder] {
			r.checked[folder] = true
			d, err := Compare(ctx, r.dst, folder, uid, j.send)
			switch {
			case err != nil && ctx.Err() != nil:
				r.checked[folder] = false // stopped in the middle: not a finding
			case err != nil:
				r.noteOnce("read back "+folder, "could not read back a message of %q to check it: %v", folder, err)
			case d != nil:
				r.altered(j, d)
			default:
				r.sum.Checked++
			}
		}
		if hasKeyword(j.rec.Flags) && (!r.flagsSeen[folder] || r.flagWatch[folder]) {
			byFolder[folder] = append(byFolder[folder], uid)
		}
	}
	kept := map[uint32][]string{}
	for folder, uids := range byFolder {
		r.flagsSeen[folder] = true
		got, err := r.dst.Flags(ctx, folder, uids)
		if err != nil && ctx.Err() != nil {
			continue // stopped: the report says the flags sent
		}
		if err != nil {
			r.noteOnce("flags "+folder, "could not read back the flags kept in %q: %v", folder, err)
			continue
		}
		for uid, f := range got {
			kept[uid] = f
		}
	}
	for i, j := range jobs {
		f, ok := kept[apps[i].UID]
		if !ok || apps[i].UID == 0 {
			continue
		}
		var removed []string
		for _, sent := range j.rec.Flags {
			if !slices.ContainsFunc(f, func(k string) bool { return strings.EqualFold(k, sent) }) {
				removed = append(removed, sent)
			}
		}
		if len(removed) == 0 {
			continue
		}
		folder := j.rec.Folder
		if !r.flagWatch[folder] {
			r.flagWatch[folder] = true
			r.note("%s removed %s from a message as it stored it in %q (its own rules): the flags each message "+
				"kept there are read back and reported from now on", r.dst.Describe(), strings.Join(removed, " "), folder)
		}
		for _, x := range removed {
			j.ev.Dropped = append(j.ev.Dropped, x+" (removed by the server)")
		}
		j.ev.Flags, j.rec.Flags = f, f
	}
}

// hasKeyword reports whether flags hold a keyword, not only system flags.
func hasKeyword(flags []string) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return !strings.HasPrefix(f, `\`) })
}

// altered records a message the server stored otherwise than it was sent.
// It stays copied (it is there, and copying it again would alter it again),
// its original is kept, and the run ends with exit 3 and says so.
func (r *runner) altered(j *job, d *Difference) {
	r.sum.Altered++
	j.ev.Altered = d
	j.rec.Reason = "stored altered by the server: " + d.String()
	j.rec.Altered = d.String()
	if r.opt.Archive != nil && j.rec.Original == "" {
		path, err := r.opt.Archive.Keep(j.rec, j.body)
		if err == nil {
			j.rec.Original, j.ev.Original = path, path
		} else {
			r.note("WARNING: the original of %s, stored altered by %s, could not be kept (%v): it stays at the source, which --delete-after-verify never deletes",
				j.rec.ID, r.dst.Describe(), err)
		}
	}
	r.noteOnce("altered", "WARNING: %s did not store a message as it was sent (%s): such messages are listed and their originals kept",
		r.dst.Describe(), d)
	if d.InHeader && r.utf8 && strings.Contains(d.Sent, `\u`) {
		r.utf8 = false
		r.note("%s said it takes 8-bit headers (UTF8=ACCEPT) but changed them: they are encoded before sending from now on", r.dst.Describe())
	}
}

// noteOnce says something once per run under key.
func (r *runner) noteOnce(key, format string, args ...any) {
	if r.said == nil {
		r.said = map[string]bool{}
	}
	if r.said[key] {
		return
	}
	r.said[key] = true
	r.note(format, args...)
}
