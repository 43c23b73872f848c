package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailmove/mailmove/mime"
)

// SpamPolicy says what a spam verdict does.
type SpamPolicy string

const (
	SpamRoute  SpamPolicy = "route"  // spam into the junk folder, flagged $Junk (the default)
	SpamFlag   SpamPolicy = "flag"   // spam stays in its folder, flagged $Junk
	SpamIgnore SpamPolicy = "ignore" // copy as if there were no verdict
)

// ParseSpamPolicy reads route, flag or ignore.
func ParseSpamPolicy(s string) (SpamPolicy, error) {
	switch p := SpamPolicy(strings.ToLower(s)); p {
	case SpamRoute, SpamFlag, SpamIgnore:
		return p, nil
	case "":
		return SpamRoute, nil
	}
	return "", fmt.Errorf("unknown spam policy %q (want route, flag or ignore)", s)
}

// Junk keywords (RFC 5788 registry) and the spellings of older clients.
const (
	KeywordJunk    = "$Junk"
	KeywordNotJunk = "$NotJunk"
)

func junkKeyword(k string) bool {
	switch strings.ToLower(k) {
	case "$junk", "junk", "$notjunk", "notjunk", "nonjunk":
		return true
	}
	return false
}

// spamPlan is what the run decided about spam before copying.
type spamPlan struct {
	junk    FolderPlan      // where routed spam goes
	guarded map[string]bool // source folders whose header verdicts are not acted on
}

// sourceJunk reports whether a source folder is a junk folder.
func sourceJunk(folder string) bool {
	if folder == "" {
		return false
	}
	top, _, _ := strings.Cut(folder, "/")
	return RoleOf(top) == UseJunk
}

func folderLabel(f string) string {
	if f == "" {
		return "the source mailbox"
	}
	return fmt.Sprintf("source folder %q", f)
}

// planSpam finds the junk folder and runs the guard: when header evidence
// alone would send more than the guard ratio of a source folder to junk, a
// filter has probably gone wrong (Orange users saw every message classed as
// junk from August 2025), and that folder's header verdicts are not acted
// on. The count covers the whole folder: messages done by earlier runs by
// their recorded verdict, the rest by reading their headers now.
func (r *runner) planSpam(ctx context.Context, entries, todo []Entry, doneVerdict map[string]string) error {
	r.spam.guarded = map[string]bool{}
	if r.opt.Spam == SpamIgnore {
		r.note("spam policy: ignore: verdicts are recorded, nothing is routed or flagged")
		return nil
	}
	dest, err := r.destFolders(ctx)
	if err != nil {
		return err
	}
	if r.opt.JunkFolder != "" {
		r.spam.junk = FolderPlan{Source: "(junk)", Dest: r.ns.Qualify(r.opt.JunkFolder, dest), How: "--junk-folder"}
	} else {
		r.spam.junk = PlanFolder("Junk", dest, r.ns, nil)
		r.spam.junk.Source = "(junk)"
	}
	r.sum.JunkFolder = r.spam.junk.Dest
	r.note("junk folder: %q (%s); spam policy: %s", r.spam.junk.Dest, r.spam.junk.How, r.opt.Spam)
	if r.opt.TrustHeaders {
		r.note("--spam-trust-headers: header verdicts are acted on however many messages they concern")
		return nil
	}
	total := map[string]int{}
	byHeader := map[string]int{}
	var order []string
	for _, e := range entries {
		if e.Skip != "" {
			continue
		}
		if _, ok := total[e.Folder]; !ok {
			order = append(order, e.Folder)
		}
		total[e.Folder]++
		if doneVerdict[e.ID] == string(mime.Spam)+"/"+string(mime.BasisHeader) {
			byHeader[e.Folder]++
		}
	}
	hs, ok := r.src.(HeaderSource)
	if !ok || len(todo) == 0 {
		return r.guard(order, total, byHeader)
	}
	err = r.eachHeader(ctx, hs, todo, func(e Entry, head []byte) {
		if sourceJunk(e.Folder) {
			return
		}
		c := mime.Classify(mime.SpamInput{Header: mime.ParseHeader(head)})
		if c.Verdict == mime.Spam && c.Basis == mime.BasisHeader {
			byHeader[e.Folder]++
		}
	})
	if err != nil {
		return err
	}
	return r.guard(order, total, byHeader)
}

func (r *runner) guard(order []string, total, byHeader map[string]int) error {
	for _, f := range order {
		n, spam := total[f], byHeader[f]
		if spam == 0 {
			continue
		}
		share := float64(spam) / float64(n)
		if n >= r.opt.GuardMin && share > r.opt.GuardRatio {
			r.spam.guarded[f] = true
			r.sum.Guarded = append(r.sum.Guarded, f)
			r.note("WARNING: spam filter headers mark %d of %d messages (%.0f%%) of %s as spam, more than %.0f%%: "+
				"this looks like a filter gone wrong, so these messages stay in their folder and are not flagged $Junk on headers alone "+
				"(--spam-trust-headers routes them anyway)", spam, n, 100*share, folderLabel(f), 100*r.opt.GuardRatio)
		} else {
			r.note("spam filter headers mark %d of %d messages (%.0f%%) of %s as spam", spam, n, 100*share, folderLabel(f))
		}
	}
	return nil
}

// eachHeader reads the headers of entries, reconnecting and going on after
// a transient failure like retrieve does.
func (r *runner) eachHeader(ctx context.Context, hs HeaderSource, entries []Entry, fn func(Entry, []byte)) error {
	return r.resume(ctx, "reading headers from", entries, func(todo []Entry, done func(Entry)) error {
		return hs.Headers(ctx, todo, func(e Entry, h []byte) error {
			fn(e, h)
			done(e)
			return nil
		})
	})
}

// applySpam turns a verdict into a folder and flags under the policy. It
// never sets both junk keywords: the source's are replaced by the verdict's.
func (r *runner) applySpam(srcFolder, folder string, flags []string, c mime.Classification) (string, []string, string) {
	if r.opt.Spam == SpamIgnore {
		return folder, flags, ""
	}
	out := make([]string, 0, len(flags)+1)
	for _, f := range flags {
		if !junkKeyword(f) {
			out = append(out, f)
		}
	}
	switch c.Verdict {
	case mime.Spam:
		if c.Basis == mime.BasisHeader && r.spam.guarded[srcFolder] {
			return folder, out, "spam by headers alone, not acted on: the guard tripped for " + folderLabel(srcFolder)
		}
		out = append(out, KeywordJunk)
		if r.opt.Spam == SpamRoute && c.Basis != mime.BasisFolder {
			folder = r.spam.junk.Dest
		}
	case mime.Ham:
		out = append(out, KeywordNotJunk)
	}
	return folder, out, ""
}
