package mbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/mime"
)

// Config says what to read.
type Config struct {
	// Path is one mbox file, or a directory of them: a Thunderbird profile's
	// Mail/... or "Local Folders" directory (subfolders in NAME.sbd/), or a
	// mutt or pine mail directory.
	Path   string
	Format Format
	// IncludeDeleted copies messages the old client marked deleted (expunged
	// in Thunderbird, D in X-Status), flagged \Deleted. By default they are
	// listed and skipped.
	IncludeDeleted bool
	// Location reads From_ dates that give no zone; time.Local when nil.
	Location *time.Location
	// Now bounds plausible From_ dates; time.Now when nil.
	Now func() time.Time
}

// Source reads mbox files. It implements migrate.Source.
type Source struct {
	cfg   Config
	files map[string]*file
	notes []string
	open  *os.File
	rd    *Reader
	rdFor string
}

var _ migrate.Source = (*Source)(nil)

type file struct {
	path   string // on disk
	rel    string // as shown and as part of message IDs
	folder string // source folder path, "/" between levels
	size   int64
	mtime  time.Time
}

// NewSource returns a source reading cfg.Path.
func NewSource(cfg Config) *Source {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{cfg: cfg}
}

// Describe implements migrate.Source.
func (s *Source) Describe() string { return "mbox:" + s.cfg.Path }

// Notes returns what the listing found worth telling: files skipped, warnings
// with their offsets.
func (s *Source) Notes() []string { return s.notes }

func (s *Source) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// Close implements migrate.Source.
func (s *Source) Close() error {
	if s.open != nil {
		err := s.open.Close()
		s.open, s.rd = nil, nil
		return err
	}
	return nil
}

// List implements migrate.Source. It reads every file once: a message's ID
// is its file and its content's fingerprint (with a counter for identical
// copies), so IDs survive new mail appended to a file and a compaction that
// moves every offset.
func (s *Source) List(ctx context.Context) ([]migrate.Entry, error) {
	s.notes = nil
	files, err := s.discover()
	if err != nil {
		return nil, &migrate.Fatal{Err: err}
	}
	s.files = map[string]*file{}
	var entries []migrate.Entry
	for _, f := range files {
		s.files[f.rel] = f
		es, err := s.listFile(ctx, f)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, &migrate.Fatal{Err: err}
		}
		entries = append(entries, es...)
	}
	return entries, nil
}

func (s *Source) listFile(ctx context.Context, f *file) ([]migrate.Entry, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	rd := NewReader(fh, f.size, 0, s.cfg.Format, s.cfg.Location)
	seen := map[string]int{}
	var entries []migrate.Entry
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, body, err := rd.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, ErrNotMbox) {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.path, err)
		}
		fp := mime.NewFingerprinter()
		fp.Write(m.Header)
		n, err := io.Copy(fp, body)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.path, err)
		}
		for _, w := range m.Warnings {
			s.note("%s: %s", f.rel, w)
		}
		sum := fp.Sum().String()[:16]
		id := "mbox:" + f.rel + "#" + sum
		if k := seen[sum]; k > 0 {
			id += "." + strconv.Itoa(k+1)
		}
		seen[sum]++
		e := migrate.Entry{ID: id, Folder: f.folder, Size: int64(len(m.Header)) + n, Offset: m.Offset}
		h := mime.ParseHeader(m.Header)
		switch {
		case i == 0 && internalData(h):
			e.Skip = "the mail store's folder data (UW IMAP, pine), not a message"
		case Deleted(h) && !s.cfg.IncludeDeleted:
			e.Skip = "deleted in the old mail client but never compacted away; --include-deleted copies it"
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// Retrieve implements migrate.Source. A file changed since List (a mail
// client compacting it) stops the run: the next run lists it again.
func (s *Source) Retrieve(ctx context.Context, entries []migrate.Entry, fn func(*migrate.Incoming) error) error {
	return s.each(ctx, entries, func(f *file, e migrate.Entry) error {
		in, err := s.read(f, e)
		if err != nil {
			return err
		}
		return fn(in)
	})
}

// Headers implements migrate.HeaderSource: each entry's header, read at
// its offset without its body.
func (s *Source) Headers(ctx context.Context, entries []migrate.Entry, fn func(migrate.Entry, []byte) error) error {
	return s.each(ctx, entries, func(f *file, e migrate.Entry) error {
		m, _, err := s.message(f, e)
		if err != nil {
			return err
		}
		return fn(e, m.Header)
	})
}

// each calls fn for every entry with its file, stopping at the first error
// or at cancellation.
func (s *Source) each(ctx context.Context, entries []migrate.Entry, fn func(*file, migrate.Entry) error) error {
	defer s.Close()
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := s.fileOf(e)
		if err != nil {
			return err
		}
		if err := fn(f, e); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) fileOf(e migrate.Entry) (*file, error) {
	rel := strings.TrimPrefix(e.ID, "mbox:")
	if i := strings.LastIndexByte(rel, '#'); i >= 0 {
		rel = rel[:i]
	}
	f := s.files[rel]
	if f == nil {
		return nil, &migrate.Fatal{Err: fmt.Errorf("message %s: not from a listed file", e.ID)}
	}
	return f, nil
}

func (s *Source) read(f *file, e migrate.Entry) (*migrate.Incoming, error) {
	m, body, err := s.message(f, e)
	if err != nil {
		return nil, err
	}
	h := mime.ParseHeader(m.Header)
	flags := Flags(h)
	if Deleted(h) {
		flags = append(flags, `\Deleted`)
	}
	header, _ := mime.RemoveFields(m.Header, func(name string) bool {
		if !mime.Bookkeeping(name) {
			return false
		}
		// Content-Length and Lines describe the message itself unless the
		// mbox used them to frame it.
		n := strings.ToLower(name)
		return m.ContentLength || n != "content-length" && n != "lines"
	})
	in := &migrate.Incoming{Entry: e, R: io.MultiReader(strings.NewReader(string(header)), body), Flags: flags}
	now := s.cfg.Now()
	if !m.Date.IsZero() && m.Date.Year() >= 1980 && m.Date.Before(now.Add(48*time.Hour)) {
		in.Date, in.DateSource = m.Date, string(mime.DateFromLine)
	}
	return in, nil
}

// message positions the reader at e and returns its framing and body. A
// file changed since List (a mail client compacting it) is a fatal error:
// the next run lists it again.
func (s *Source) message(f *file, e migrate.Entry) (*Message, io.Reader, error) {
	if s.rdFor != f.rel || s.rd == nil {
		s.Close()
		fh, err := os.Open(f.path)
		if err != nil {
			return nil, nil, &migrate.Fatal{Err: err}
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, nil, &migrate.Fatal{Err: err}
		}
		if st.Size() != f.size || !st.ModTime().Equal(f.mtime) {
			fh.Close()
			return nil, nil, &migrate.Fatal{Err: fmt.Errorf(
				"%s changed while mailmove was reading it (is the mail client running? close it): run mailmove again", f.path)}
		}
		s.open, s.rdFor = fh, f.rel
	}
	if s.rd == nil || s.rd.Offset() != e.Offset {
		s.rd = NewReader(s.open, f.size, e.Offset, s.cfg.Format, s.cfg.Location)
	}
	m, body, err := s.rd.Next()
	if err == nil && m.Offset != e.Offset {
		err = fmt.Errorf("no message at offset %d", e.Offset)
	}
	if err != nil {
		return nil, nil, &migrate.Fatal{Err: fmt.Errorf("%s: %w (the file changed: run mailmove again)", f.path, err)}
	}
	return m, body, nil
}

// internalData recognises the pseudo-message UW IMAP and pine keep first in
// an mbox to hold the folder's UID state.
func internalData(h mime.Header) bool {
	return h.Get("X-IMAP") != "" || strings.Contains(h.Get("Subject"), "FOLDER INTERNAL DATA")
}

// Thunderbird's X-Mozilla-Status bits (nsMsgMessageFlags.idl).
const (
	mozRead      = 0x0001
	mozReplied   = 0x0002
	mozMarked    = 0x0004
	mozExpunged  = 0x0008
	mozForwarded = 0x1000
)

// Deleted reports whether the old client marked the message deleted:
// X-Mozilla-Status's expunged bit (Thunderbird deletes without compacting)
// or a D in X-Status (mutt, pine).
func Deleted(h mime.Header) bool {
	if v, ok := mozStatus(h); ok && v&mozExpunged != 0 {
		return true
	}
	return strings.Contains(h.Get("X-Status"), "D")
}

func mozStatus(h mime.Header) (uint64, bool) {
	s := h.Get("X-Mozilla-Status")
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return v, err == nil
}

// Flags maps the mail-client state kept in the header to IMAP flags:
// Status (R: read) and X-Status (A: answered, F: flagged, T: draft) as mutt
// and pine write them, X-Keywords, Thunderbird's X-Mozilla-Status bits and
// its tags in X-Mozilla-Keys. \Deleted is left to the caller.
func Flags(h mime.Header) []string {
	var out []string
	add := func(f string) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if strings.Contains(h.Get("Status"), "R") {
		add(`\Seen`)
	}
	xs := h.Get("X-Status")
	for c, f := range map[byte]string{'A': `\Answered`, 'F': `\Flagged`, 'T': `\Draft`} {
		if strings.IndexByte(xs, c) >= 0 {
			add(f)
		}
	}
	if v, ok := mozStatus(h); ok {
		for bit, f := range map[uint64]string{mozRead: `\Seen`, mozReplied: `\Answered`, mozMarked: `\Flagged`, mozForwarded: "$Forwarded"} {
			if v&bit != 0 {
				add(f)
			}
		}
	}
	for _, name := range []string{"X-Keywords", "X-Mozilla-Keys"} {
		for _, v := range h.Values(name) {
			for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
				add(k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// discover finds the mbox files under the configured path.
func (s *Source) discover() ([]*file, error) {
	root := s.cfg.Path
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		name := filepath.Base(root)
		return []*file{{path: root, rel: name, folder: folderName(name), size: st.Size(), mtime: st.ModTime()}}, nil
	}
	if err := profileRoot(root); err != nil {
		return nil, err
	}
	var files []*file
	var empty, beside []string
	// Symbolic links are followed (a linked Archive2019, a linked .sbd):
	// a folder or file reached twice, through a loop or two links, is read
	// once and the other way named.
	var seen []os.FileInfo
	var seenAt []string
	already := func(st os.FileInfo, rel string) bool {
		for i, v := range seen {
			if os.SameFile(v, st) {
				s.note("%s: the same as %s (a symbolic link): read once", rel, seenAt[i])
				return true
			}
		}
		seen, seenAt = append(seen, st), append(seenAt, rel)
		return false
	}
	already(st, "the top folder")
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			s.note("%s: cannot be read (%v): skipped", rel, err)
			return
		}
		for _, d := range entries {
			name := d.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			path := filepath.Join(dir, name)
			r := filepath.ToSlash(filepath.Join(rel, name))
			info, err := os.Stat(path) // through links
			if err != nil {
				if d.Type()&fs.ModeSymlink != 0 {
					s.note("%s: a symbolic link to nothing readable (%v): skipped", r, err)
				} else {
					s.note("%s: cannot be read (%v): skipped", r, err)
				}
				continue
			}
			if info.IsDir() {
				if name == "cur" || name == "new" || name == "tmp" {
					s.note("%s: looks like a Maildir, which this source does not read: skipped", rel)
					continue
				}
				if !already(info, r) {
					walk(path, r)
				}
				continue
			}
			if !info.Mode().IsRegular() || already(info, r) {
				continue
			}
			if ignored(name) {
				if !strings.EqualFold(filepath.Ext(name), ".msf") { // one per folder: no news
					beside = append(beside, r)
				}
				continue
			}
			if info.Size() == 0 {
				empty = append(empty, r)
				continue
			}
			if !startsLikeMbox(path) {
				s.note("%s: not an mbox file (it does not start with \"From \"): skipped", r)
				continue
			}
			files = append(files, &file{path: path, rel: r, folder: folderName(r), size: info.Size(), mtime: info.ModTime()})
		}
	}
	walk(root, ".")
	for _, f := range files {
		f.rel = strings.TrimPrefix(f.rel, "./")
		f.folder = folderName(f.rel)
	}
	if len(empty) > 0 {
		s.note("%d empty folder file(s), nothing to copy: %s", len(empty), strings.Join(empty, ", "))
	}
	if len(beside) > 0 {
		for i := range beside {
			beside[i] = strings.TrimPrefix(beside[i], "./")
		}
		more := ""
		if len(beside) > 8 {
			more = fmt.Sprintf(" and %d more", len(beside)-8)
			beside = beside[:8]
		}
		s.note("%s%s: a mail client's own files (indexes, settings), not mail: skipped", strings.Join(beside, ", "), more)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no mbox files found", root)
	}
	for _, f := range files {
		if !utf8.ValidString(f.rel) {
			s.note("%s: folder name is not UTF-8; read as Latin-1", f.rel)
		}
	}
	return files, nil
}

// profileRoot refuses a Thunderbird profile folder given whole: its mail is
// in Mail/ACCOUNT (one local store per POP3 account and Local Folders),
// and ImapMail/ holds copies of IMAP accounts, which are already on their
// server. Read whole, every folder would nest under "Mail/Local Folders",
// and the junk folder would not be known as one.
func profileRoot(root string) error {
	if _, err := os.Stat(filepath.Join(root, "prefs.js")); err != nil {
		return nil
	}
	stores, _ := filepath.Glob(filepath.Join(root, "Mail", "*"))
	var dirs []string
	for _, d := range stores {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	return &migrate.Fatal{Err: fmt.Errorf("%s is a Thunderbird profile, not a mail folder: give mbox: one of its local mail stores: %s (ImapMail/ holds copies of IMAP accounts, already on their server)",
		root, strings.Join(dirs, ", "))}
}

// ignored names the files a mail client keeps beside its mbox files.
func ignored(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".msf", ".dat", ".html", ".json", ".sqlite", ".mozlz4", ".lock", ".bak", ".tmp":
		return true
	}
	return false
}

func startsLikeMbox(path string) bool {
	fh, err := os.Open(path)
	if err != nil {
		return false
	}
	defer fh.Close()
	b := make([]byte, 5)
	n, _ := io.ReadFull(fh, b)
	return string(b[:n]) == "From "
}

// folderName turns a path relative to the root into a source folder path:
// Thunderbird keeps NAME's subfolders in NAME.sbd/; levels are joined by "/".
// A name that is not UTF-8 (an old pine or Latin-1 system) is read as
// Latin-1.
func folderName(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i, p := range parts {
		if i < len(parts)-1 {
			p = strings.TrimSuffix(p, ".sbd")
		}
		if !utf8.ValidString(p) {
			r := make([]rune, len(p))
			for j := 0; j < len(p); j++ {
				r[j] = rune(p[j])
			}
			p = string(r)
		}
		parts[i] = p
	}
	return strings.Join(parts, "/")
}
