package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// bbolt's file format (go.etcd.io/bbolt internal/common, version 2): two
// meta pages, at offset 0 and at one page size, each a 16-byte page header
// followed by the meta fields below, little-endian on every platform
// mailmove runs on.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumAt      = 56 // the checksum (FNV-64a of the 56 bytes before it)
	noFreelist     = ^uint64(0)
)

// DamagedError is a state file bbolt cannot be trusted to open: truncated,
// overwritten, not a state file at all. bbolt itself would crash on some
// (a truncated file is read through its memory map past the end).
type DamagedError struct {
	Path, Why string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("state file %s is damaged: %s", e.Path, e.Why)
}

type meta struct {
	pageSize                 uint32
	root, freelist, pgid, tx uint64
}

func readMeta(b []byte) (meta, error) {
	if len(b) < pageHeaderSize+metaSumAt+8 {
		return meta{}, errors.New("too short for a meta page")
	}
	m := b[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return meta{}, errors.New("not a bbolt file (no magic number)")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("bbolt file version %d, not %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumAt])
	if h.Sum64() != le.Uint64(m[metaSumAt:]) {
		return meta{}, errors.New("meta page checksum mismatch")
	}
	mt := meta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), pgid: le.Uint64(m[40:]), tx: le.Uint64(m[48:])}
	// m[24:32] is the root bucket's sequence, unused here.
	if mt.pageSize < 512 || mt.pageSize > 1<<16 || mt.pageSize&(mt.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("page size %d", mt.pageSize)
	}
	if mt.root >= mt.pgid || mt.freelist >= mt.pgid && mt.freelist != noFreelist || mt.pgid < 4 {
		return meta{}, errors.New("meta page points past the end of the data")
	}
	return mt, nil
}

// check reads path's meta pages as bbolt would and says whether the file
// can be opened safely: the newer valid meta page must describe a file no
// longer than the one on disk. An empty or missing file is a new state.
func check(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	damaged := func(format string, args ...any) error {
		return &DamagedError{Path: path, Why: fmt.Sprintf(format, args...)}
	}
	buf := make([]byte, pageHeaderSize+metaSumAt+8)
	if _, err := io.ReadFull(f, buf); err != nil {
		return damaged("%d bytes, too short to be a state file", st.Size())
	}
	m0, err0 := readMeta(buf)
	size := uint32(4096)
	if err0 == nil {
		size = m0.pageSize
	}
	var m1 meta
	err1 := errors.New("no second meta page")
	if _, err := f.ReadAt(buf, int64(size)); err == nil {
		m1, err1 = readMeta(buf)
	}
	var m meta
	switch {
	case err0 == nil && (err1 != nil || m0.tx >= m1.tx):
		m = m0
	case err1 == nil:
		m = m1
	default:
		return damaged("%v", err0)
	}
	if need := int64(m.pgid) * int64(m.pageSize); st.Size() < need {
		return damaged("%d bytes where its pages need %d: truncated", st.Size(), need)
	}
	w := &walker{f: f, m: m, seen: map[uint64]bool{}}
	if err := w.tree(m.root, 0); err != nil {
		return damaged("%v", err)
	}
	if m.freelist != noFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return damaged("%v", err)
		}
	}
	return nil
}

// walker reads every page of a bbolt file's buckets, as bbolt will through
// its memory map, and checks that nothing points outside the file or its
// page: bbolt trusts these offsets, and a page that lies about them makes it
// read unmapped memory (a crash no recover catches when it happens in
// bbolt's own goroutines) or loop for ever.
type walker struct {
	f    io.ReaderAt
	m    meta
	seen map[uint64]bool
	n    int // pages read
}

const (
	branchFlag   = 0x01
	leafFlag     = 0x02
	freelistFlag = 0x10
	bucketFlag   = 0x01 // on a leaf element: its value is a bucket
	elemSize     = 16
	maxDepth     = 64
)

// page reads page id whole (with its overflow pages), once.
func (w *walker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.m.pgid {
		return nil, fmt.Errorf("page %d is outside the file's %d pages", id, w.m.pgid)
	}
	if w.seen[id] {
		return nil, fmt.Errorf("page %d is reached twice (a loop)", id)
	}
	w.seen[id] = true
	ps := int64(w.m.pageSize)
	head := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(head, int64(id)*ps); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(head); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	overflow := uint64(le.Uint32(head[12:]))
	if id+overflow >= w.m.pgid {
		return nil, fmt.Errorf("page %d runs past the file's %d pages", id, w.m.pgid)
	}
	buf := make([]byte, int64(1+overflow)*ps)
	if _, err := w.f.ReadAt(buf, int64(id)*ps); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	return buf, nil
}

// tree checks the B+tree of a bucket rooted at page id.
func (w *walker) tree(id uint64, depth int) error {
	if depth > maxDepth {
		return errors.New("buckets nested too deep")
	}
	p, err := w.page(id)
	if err != nil {
		return err
	}
	return w.node(p, depth)
}

// node checks one branch or leaf page, p, and what it points to.
func (w *walker) node(p []byte, depth int) error {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if pageHeaderSize+count*elemSize > len(p) {
		return fmt.Errorf("page %d lists %d elements, more than it holds", le.Uint64(p), count)
	}
	for i := 0; i < count; i++ {
		at := pageHeaderSize + i*elemSize
		e := p[at : at+elemSize]
		switch {
		case flags&branchFlag != 0:
			pos, ksize := int(le.Uint32(e[0:])), int(le.Uint32(e[4:]))
			if at+pos+ksize > len(p) || pos < 0 {
				return fmt.Errorf("page %d: a key outside the page", le.Uint64(p))
			}
			if err := w.tree(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		case flags&leafFlag != 0:
			eflags, pos, ksize, vsize := le.Uint32(e[0:]), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
			if pos < 0 || ksize < 0 || vsize < 0 || at+pos+ksize+vsize > len(p) {
				return fmt.Errorf("page %d: a key or value outside the page", le.Uint64(p))
			}
			if eflags&bucketFlag == 0 {
				continue
			}
			v := p[at+pos+ksize : at+pos+ksize+vsize]
			if len(v) < 16 {
				return fmt.Errorf("page %d: a bucket header cut short", le.Uint64(p))
			}
			if root := le.Uint64(v); root != 0 {
				if err := w.tree(root, depth+1); err != nil {
					return err
				}
				continue
			}
			// An inline bucket: its one leaf page follows the header.
			inline := v[16:]
			if len(inline) < pageHeaderSize || le.Uint16(inline[8:])&leafFlag == 0 {
				return fmt.Errorf("page %d: an inline bucket that is no leaf", le.Uint64(p))
			}
			if err := w.node(inline, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("page %d is neither branch nor leaf (flags %#x)", le.Uint64(p), flags)
		}
	}
	if count == 0 && flags&(branchFlag|leafFlag) == 0 {
		return fmt.Errorf("page %d is neither branch nor leaf (flags %#x)", le.Uint64(p), flags)
	}
	return nil
}

// freelist checks the freelist page: the page ids it lists are in the file.
func (w *walker) freelist(id uint64) error {
	p, err := w.page(id)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if le.Uint16(p[8:])&freelistFlag == 0 {
		return fmt.Errorf("the freelist page %d is not one", id)
	}
	n, at := uint64(le.Uint16(p[10:])), pageHeaderSize
	if n == 0xFFFF { // the count is in the first element (bbolt's freelist.Write)
		n, at = le.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > uint64(len(p)-at)/8 {
		return fmt.Errorf("the freelist lists %d pages, more than its page holds", n)
	}
	for i := uint64(0); i < n; i++ {
		if f := le.Uint64(p[at+int(i)*8:]); f < 2 || f >= w.m.pgid {
			return fmt.Errorf("the freelist frees page %d, outside the file", f)
		}
	}
	return nil
}

// openBolt opens the file with bbolt, a fault or panic on a damaged file
// turned into an error.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &DamagedError{Path: path, Why: fmt.Sprintf("opening it failed: %v", r)}
		}
	}()
	return bolt.Open(path, 0o600, opts)
}
