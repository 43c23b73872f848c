package mime

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
	"time"
	"unicode/utf8"
)

// StreamAbove is the size above which the pipeline repairs a message with
// RepairTo, from its spool file, rather than with Repair in memory.
const StreamAbove = 4 << 20

// headMax bounds the top-level header RepairTo holds in memory; partHeadMax
// a part's.
const (
	headMax     = 1 << 20
	partHeadMax = 256 << 10
	maxParts    = 10000
)

// ErrHeaderTooLong is a message RepairTo cannot repair in bounded memory:
// its header goes on for more than a megabyte.
var ErrHeaderTooLong = errors.New("the header is longer than a megabyte: not repaired")

// RepairTo is Repair for messages too large to hold in memory: it reads the
// message from src (size bytes, with CRLF line breaks, as the pipeline
// spools it) and writes what Repair would make of it to w, in memory bounded
// by the header and a few buffers whatever the size. It does every repair
// Repair does but looking for a mail wrapped in XML, which is for small
// messages (Orange's run to a few kilobytes). When nothing needs repair it
// writes nothing and Changed is false. Msg is left nil.
func RepairTo(src io.ReaderAt, size int64, opts RepairOptions, w io.Writer) (Repaired, error) {
	var r Repaired
	if opts.Date.IsZero() {
		opts.Date = time.Now()
	}
	find := func(code, text, change string) {
		r.Findings = append(r.Findings, Finding{Code: code, Text: text, Change: change})
		r.Changed = true
	}
	if blank, err := isBlank(io.NewSectionReader(src, 0, size)); err != nil {
		return r, err
	} else if blank {
		m := synthetic(nil, opts.Date, "(empty message kept by mailmove)",
			"This message was empty on the source. mailmove copied this note in its place so that nothing is lost silently.\r\n")
		find("empty", "the message was empty (IMAP servers refuse zero-byte messages)", "replaced by a short note with a header")
		out := r.finish(m)
		_, err := w.Write(out.Msg)
		out.Msg = nil
		return out, err
	}

	// The top-level header, fixed in memory as Repair fixes it.
	cut := min(size, headMax)
	head := make([]byte, cut)
	if _, err := src.ReadAt(head, 0); err != nil && err != io.EOF {
		return r, err
	}
	var v *virt
	if headerless(head) {
		h, from, err := syntheticHead(src, size, opts.Date)
		if err != nil {
			return r, err
		}
		find("no-header", "the message has no header: it starts with text that is not a header field",
			"a header (From, Subject, Date, Message-ID) was added above the original text")
		v = &virt{head: h, src: src, off: from, size: size}
	} else {
		if cut < size {
			hs := scanHeader(head)
			if HeaderEnd(head) == len(head) && (hs.insertAt < 0 || hs.insertAt == len(head)) {
				return r, ErrHeaderTooLong
			}
		}
		fixed := r.fixHeader(head, opts.Date)
		v = &virt{head: fixed, src: src, off: cut, size: size}
	}

	// The parts, and what each stage does to them.
	p := &planner{v: v, opts: opts}
	root, err := p.node(0, v.len(), 0, true)
	if err != nil {
		return r, err
	}
	if p.nulChanged() {
		find("nul", "NUL bytes in the body (Dovecot would store them as 0x80, other servers refuse them)", strings.Join(p.nulChanges(), "; "))
	}
	top := root.header
	if root.leaf && root.a != nil {
		top = root.a.header
	}
	if p.nulChanged() {
		top = ensureMIMEHeader(top)
	}
	if opts.EncodeHeaders {
		if out, changes := encodeHeader8bit(top); len(changes) > 0 {
			why := header8bitWhy(top)
			top = out
			find("header-8bit", why,
				strings.Join(changes, "; "))
		}
	}
	if opts.CloseParts && p.unclosed > 0 {
		find("multipart-unclosed", "a multipart part list that never ends (no close delimiter, RFC 2046 section 5.1.1)",
			fmt.Sprintf("%d close delimiter(s) added at the end of the parts, nothing removed", p.unclosed))
	}
	if len(p.longChanges) > 0 {
		top = setLeafB(root, top)
		top = ensureMIMEHeader(top)
		find("long-lines", "lines longer than 998 octets (RFC 5322 section 2.1.1)", strings.Join(p.longChanges, "; "))
	} else {
		top = setLeafB(root, top)
	}
	if !r.Changed {
		return r, nil
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	ow := &lastWriter{w: bw}
	if _, err := io.WriteString(ow, RepairHeader+": "+strings.Join(r.Codes(), ", ")+"; original kept by mailmove\r\n"); err != nil {
		return r, err
	}
	root.header = top
	if err := p.write(ow, root); err != nil {
		return r, err
	}
	if ow.last != '\n' {
		// As Repair's last toCRLF: the message ends with a line break.
		if _, err := io.WriteString(ow, "\r\n"); err != nil {
			return r, err
		}
	}
	return r, bw.Flush()
}

// setLeafB gives the top header of a top-level leaf the header its second
// stage (long lines) makes, applied to top, the header so far.
func setLeafB(root *node, top []byte) []byte {
	if root.leaf && root.b != nil && root.b.cte != "" {
		return setField(top, "Content-Transfer-Encoding", root.b.cte)
	}
	return top
}

// isBlank reports whether a message holds nothing but blanks and NULs
// (Repair's "empty"): what bytes.TrimSpace trims, Unicode spaces included.
func isBlank(r io.Reader) (bool, error) {
	buf := make([]byte, 64<<10)
	var carry []byte
	for {
		n, err := r.Read(buf)
		data := append(carry, bytes.ReplaceAll(buf[:n], []byte{0}, nil)...)
		keep := incomplete(data)
		if len(bytes.TrimSpace(data[:len(data)-keep])) > 0 {
			return false, nil
		}
		carry = append(carry[:0], data[len(data)-keep:]...)
		if err == io.EOF {
			return len(bytes.TrimSpace(carry)) == 0, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// incomplete is how many bytes at the end of b begin a UTF-8 sequence that
// is not complete yet (at most 3).
func incomplete(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 { // a leading byte: complete or not?
			if utf8.FullRune(b[len(b)-k:]) {
				return 0
			}
			return k
		}
	}
	return 0
}

// headerless reports whether Repair takes the message to have no header,
// from its start (the first line decides).
func headerless(head []byte) bool {
	m := head
	header, body := splitMessage(m)
	if bytes.IndexByte(header, 0) >= 0 {
		m = append(bytes.ReplaceAll(header, []byte{0}, nil), body...)
	}
	hs := scanHeader(m)
	if hs.fixName != nil {
		hs = scanHeader(hs.fixName)
	}
	return hs.headerless
}

// syntheticHead is what synthetic puts above a headerless message, read
// from src, and where the text it keeps starts.
func syntheticHead(src io.ReaderAt, size int64, date time.Time) ([]byte, int64, error) {
	h := sha256.New()
	var valid utf8Check
	var from int64 = -1
	r := bufio.NewReaderSize(io.NewSectionReader(src, 0, size), 64<<10)
	var off int64
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		chunk := buf[:n]
		h.Write(chunk)
		valid.write(chunk)
		if from < 0 {
			if i := bytes.IndexFunc(chunk, func(c rune) bool { return c != '\r' && c != '\n' }); i >= 0 {
				from = off + int64(i)
			}
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
	}
	charset := "utf-8"
	if !valid.ok() {
		charset = "iso-8859-1"
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	var b bytes.Buffer
	writeSyntheticHead(&b, sum, charset, date, "(message without a header, kept by mailmove)")
	if from < 0 {
		from = size
	}
	return b.Bytes(), from, nil
}

// utf8Check validates UTF-8 written in chunks of any size.
type utf8Check struct {
	carry []byte
	bad   bool
}

func (u *utf8Check) write(p []byte) {
	if u.bad {
		return
	}
	data := append(u.carry, p...)
	keep := incomplete(data)
	if !utf8.Valid(data[:len(data)-keep]) {
		u.bad = true
	}
	u.carry = append(u.carry[:0], data[len(data)-keep:]...)
}

func (u *utf8Check) ok() bool { return !u.bad && utf8.Valid(u.carry) }

// virt is the message as the later stages see it: the fixed header in
// memory, then the rest of the source from off.
type virt struct {
	head      []byte
	src       io.ReaderAt
	off, size int64
}

func (v *virt) len() int64 { return int64(len(v.head)) + v.size - v.off }

func (v *virt) ReadAt(p []byte, at int64) (int, error) {
	n := 0
	if at < int64(len(v.head)) {
		n = copy(p, v.head[at:])
		if n == len(p) {
			return n, nil
		}
	}
	rest := at + int64(n) - int64(len(v.head))
	if rest >= v.size-v.off {
		return n, io.EOF
	}
	m, err := v.src.ReadAt(p[n:min(len(p), n+int(v.size-v.off-rest))], v.off+rest)
	n += m
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (v *virt) section(from, to int64) io.Reader { return io.NewSectionReader(v, from, to-from) }

func (v *virt) bytes(from, to int64) ([]byte, error) {
	b := make([]byte, to-from)
	_, err := v.ReadAt(b, from)
	if err == io.EOF && int64(len(b)) == to-from {
		err = nil
	}
	return b, err
}

// node is one part of the message, as walkParts sees it.
type node struct {
	from, bodyFrom, to int64 // header, body, end
	header             []byte
	leaf               bool
	untouched          bool // a leaf whose header is too long to touch: copied without its NULs
	// A multipart: its delimiter, where its preamble ends, its parts and
	// what lies between; closed says a close delimiter ends it.
	delim    []byte
	preamble int64 // end of the preamble (the line break before the first delimiter included)
	parts    []part
	closed   bool
	closeAt  int64 // start of the close delimiter line
	inner    *node // message/rfc822
	// A leaf's two stages: NUL bytes (a), then long lines (b).
	a, b *stage
	// lastOfUnclosed: the last part of a multipart without a close
	// delimiter, which closeParts closes before the second stage.
	lastOfUnclosed bool
}

// part is one delimiter line and the part after it, up to the next line
// break before a delimiter (or the end).
type part struct {
	line, lineEnd int64 // the delimiter line
	n             *node // nil when the message ends on this delimiter line
	between       int64 // end of the line break after the part
}

// stage is what one repair stage does to a leaf.
type stage struct {
	kind   string // "nul-header", "drop", "base64", "qp", "rewrap", "qp-text", "base64-raw"
	qpIn   bool   // the input is quoted-printable: decoded first
	header []byte // the leaf's header after the stage (nil: unchanged)
	cte    string // the Content-Transfer-Encoding the stage sets, for a top-level leaf
}

// planner reads the message's structure (the first pass) and then writes
// the repaired message (the second).
type planner struct {
	v           *virt
	opts        RepairOptions
	nodes       int
	nul         []string // changes of the NUL stage, in order
	outsideNUL  int      // NUL bytes outside any leaf
	longChanges []string
	unclosed    int
}

func (p *planner) nulChanged() bool { return len(p.nul) > 0 || p.outsideNUL > 0 }

func (p *planner) nulChanges() []string {
	out := append([]string(nil), p.nul...)
	if p.outsideNUL > 0 {
		out = append(out, fmt.Sprintf("%d NUL byte(s) removed outside any part", p.outsideNUL))
	}
	return out
}

// headerEnd finds where the header of [from, to) ends: after its empty
// line, or at to when it has none.
func (p *planner) headerEnd(from, to int64) (int64, error) {
	r := bufio.NewReaderSize(p.v.section(from, to), 64<<10)
	off := from
	start := true
	for {
		line, err := r.ReadSlice('\n')
		if start && (bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) || len(line) == 1 && line[0] == '\r' && err == io.EOF) {
			return off + int64(len(line)), nil
		}
		off += int64(len(line))
		start = err != bufio.ErrBufferFull
		if err == io.EOF {
			return to, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, err
		}
	}
}

// node reads the part [from, to).
func (p *planner) node(from, to int64, depth int, top bool) (*node, error) {
	p.nodes++
	hEnd, err := p.headerEnd(from, to)
	if err != nil {
		return nil, err
	}
	n := &node{from: from, bodyFrom: hEnd, to: to}
	hb, err := p.v.bytes(from, min(hEnd, from+partHeadMax))
	if err != nil {
		return nil, err
	}
	if top || hEnd-from <= partHeadMax {
		if top {
			hb, err = p.v.bytes(from, hEnd)
			if err != nil {
				return nil, err
			}
		}
		n.header = hb
	}
	h := ParseHeader(hb)
	t, params := contentType(h)
	switch {
	case depth < 20 && strings.HasPrefix(t, "multipart/") && params["boundary"] != "" && p.nodes < maxParts:
		n.delim = []byte("--" + params["boundary"])
		ok, err := p.multipart(n, depth)
		if err != nil || ok {
			return n, err
		}
	case depth < 20 && t == "message/rfc822" && p.nodes < maxParts:
		if !top {
			p.outsideNUL += bytes.Count(hb, []byte{0})
		}
		n.inner, err = p.node(hEnd, to, depth+1, false)
		return n, err
	}
	n.leaf = true
	return n, p.leaf(n, h, t)
}

// multipart reads the parts of n as walkParts does; false when it has no
// delimiter at all (a leaf, then).
func (p *planner) multipart(n *node, depth int) (bool, error) {
	lines, err := p.delimiterLines(n)
	if err != nil || len(lines) == 0 {
		return false, err
	}
	n.preamble = lines[0].start
	for i, l := range lines {
		if l.close {
			n.closed, n.closeAt = true, l.start
			break
		}
		pt := part{line: l.start, lineEnd: l.end}
		if l.end >= n.to {
			// The message ends on this delimiter line.
			n.parts = append(n.parts, pt)
			break
		}
		partEnd, next := n.to, n.to
		if i+1 < len(lines) {
			next = lines[i+1].start
			partEnd = next
			if next > l.end {
				// The line break before a delimiter belongs to it (RFC 2046
				// section 5.1.1).
				if br, _ := p.v.bytes(next-2, next); bytes.Equal(br, []byte("\r\n")) && next-2 >= l.end {
					partEnd = next - 2
				} else {
					partEnd = next - 1
				}
			}
		}
		child, err := p.node(l.end, partEnd, depth+1, false)
		if err != nil {
			return true, err
		}
		pt.n, pt.between = child, next
		n.parts = append(n.parts, pt)
	}
	if !n.closed {
		p.unclosed++
		if k := len(n.parts); k > 0 && n.parts[k-1].n != nil {
			n.parts[k-1].n.lastOfUnclosed = true
		}
	}
	// NULs in what no leaf holds: the multipart's header (unless it is the
	// top one, already fixed), the preamble, the delimiter lines, the
	// line breaks between, the epilogue.
	count := func(from, to int64) error {
		c, err := countNUL(p.v.section(from, to))
		p.outsideNUL += c
		return err
	}
	if n.from > 0 {
		if err := count(n.from, n.bodyFrom); err != nil {
			return true, err
		}
	}
	if err := count(n.bodyFrom, n.preamble); err != nil {
		return true, err
	}
	for _, pt := range n.parts {
		if err := count(pt.line, pt.lineEnd); err != nil {
			return true, err
		}
		if pt.n != nil {
			if err := count(pt.n.to, pt.between); err != nil {
				return true, err
			}
		}
	}
	if n.closed {
		if err := count(n.closeAt, n.to); err != nil {
			return true, err
		}
	}
	return true, nil
}

type delimLine struct {
	start, end int64
	close      bool
}

// delimiterLines finds the delimiter lines of multipart n in its body, in
// order, up to and including a close delimiter.
func (p *planner) delimiterLines(n *node) ([]delimLine, error) {
	r := bufio.NewReaderSize(p.v.section(n.bodyFrom, n.to), 64<<10)
	off := n.bodyFrom
	var out []delimLine
	lineStart := true
	for {
		line, err := r.ReadSlice('\n')
		if lineStart && bytes.HasPrefix(line, n.delim) {
			rest := line[len(n.delim):]
			end := off + int64(len(line))
			for err == bufio.ErrBufferFull { // a delimiter line that goes on: read to its end
				var more []byte
				more, err = r.ReadSlice('\n')
				end += int64(len(more))
			}
			if ends(rest) {
				c := bytes.HasPrefix(rest, []byte("--"))
				out = append(out, delimLine{start: off, end: end, close: c})
				if c {
					return out, nil
				}
			}
			off = end
			lineStart = true
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		off += int64(len(line))
		lineStart = err != bufio.ErrBufferFull
		if err == io.EOF {
			return out, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return nil, err
		}
	}
}

// ends is delimiterEnds for what follows the delimiter on its line, the
// line break included when there is one.
func ends(rest []byte) bool {
	if bytes.HasPrefix(rest, []byte("--")) {
		return true
	}
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || rest[0] == '\r' || rest[0] == '\n'
}

func countNUL(r io.Reader) (int, error) {
	n := 0
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{0})
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// leafFacts is what the first pass learns of a leaf's body.
type leafFacts struct {
	nul      int
	longest  int // of its lines, line break excluded
	endsLF   bool
	nonEmpty bool
}

// leaf plans the two stages of a leaf.
func (p *planner) leaf(n *node, h Header, t string) error {
	if n.header == nil && n.bodyFrom-n.from > partHeadMax {
		// A header this long is not touched, nor its body; their NUL
		// bytes go, as those outside any part.
		n.untouched = true
		c, err := countNUL(p.v.section(n.from, n.to))
		p.outsideNUL += c
		return err
	}
	body := func() io.Reader { return p.v.section(n.bodyFrom, n.to) }
	facts, err := lineFacts(body())
	if err != nil {
		return err
	}
	cte := strings.ToLower(h.Get("Content-Transfer-Encoding"))
	headerNUL := bytes.Count(n.header, []byte{0})
	// Stage A: NUL bytes (encodeNUL).
	hA := n.header
	aOut := body
	switch {
	case headerNUL > 0 || facts.nul > 0:
		if headerNUL > 0 {
			p.nul = append(p.nul, fmt.Sprintf("%d NUL byte(s) removed from a part's header", headerNUL))
			hA = bytes.ReplaceAll(n.header, []byte{0}, nil)
			n.a = &stage{kind: "nul-header", header: hA}
		}
		if facts.nul == 0 {
			break
		}
		switch cte {
		case "base64":
			n.a = &stage{kind: "drop", header: hA}
			p.nul = append(p.nul, fmt.Sprintf("%s: %d NUL byte(s) dropped from base64 text (not data)", t, facts.nul))
			endsLF := facts.endsLF
			aOut = func() io.Reader { return sameEndingReader(endsLF, &dropNUL{r: body()}) }
		default:
			n.a = &stage{kind: "base64", qpIn: cte == "quoted-printable", header: setField(hA, "Content-Transfer-Encoding", "base64"), cte: "base64"}
			p.nul = append(p.nul, fmt.Sprintf("%s: re-encoded as base64 to carry %d NUL byte(s)", t, facts.nul))
			return nil // base64 lines are short: no second stage
		}
	}
	if !p.opts.FoldLines {
		return nil
	}
	// Stage B: long lines (reencodeLong), on what stage A made.
	longest := facts.longest
	if n.a != nil && n.a.kind == "drop" {
		f, err := lineFacts(aOut())
		if err != nil {
			return err
		}
		longest = f.longest
	}
	if longest <= 998 {
		return nil
	}
	hB := hA
	ph := ParseHeader(hB)
	cteB := strings.ToLower(ph.Get("Content-Transfer-Encoding"))
	tB, _ := contentType(ph)
	if cteB == "base64" {
		if ok, err := decodes(aOut()); err != nil {
			return err
		} else if ok {
			n.b = &stage{kind: "rewrap", header: hB}
			p.longChanges = append(p.longChanges, tB+": base64 lines rewrapped at 76")
			return nil
		}
	}
	qp := cteB == "quoted-printable"
	if strings.HasPrefix(tB, "text/") {
		n.b = &stage{kind: "qp-text", qpIn: qp, header: setField(hB, "Content-Transfer-Encoding", "quoted-printable"), cte: "quoted-printable"}
		p.longChanges = append(p.longChanges, tB+": re-encoded as quoted-printable")
		return nil
	}
	n.b = &stage{kind: "base64-raw", qpIn: qp, header: setField(hB, "Content-Transfer-Encoding", "base64"), cte: "base64"}
	p.longChanges = append(p.longChanges, tB+": re-encoded as base64")
	return nil
}

// lineFacts reads a leaf's body: its NUL bytes, its longest line as
// longestLine measures it (line break excluded; a last line without one
// whole), whether it ends with a line break.
func lineFacts(r io.Reader) (leafFacts, error) {
	var f leafFacts
	buf := make([]byte, 64<<10)
	line := 0     // bytes of the current line so far
	var prev byte // the byte before the current position
	for {
		n, err := r.Read(buf)
		b := buf[:n]
		f.nul += bytes.Count(b, []byte{0})
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				line += len(b)
				prev = b[len(b)-1]
				break
			}
			l := line + i
			if i > 0 && b[i-1] == '\r' || i == 0 && prev == '\r' && line > 0 {
				l--
			}
			f.longest = max(f.longest, l)
			line, prev = 0, '\n'
			b = b[i+1:]
		}
		if n > 0 {
			f.nonEmpty = true
		}
		if err == io.EOF {
			f.longest = max(f.longest, line)
			f.endsLF = f.nonEmpty && prev == '\n' && line == 0
			return f, nil
		}
		if err != nil {
			return f, err
		}
	}
}

// decodes reports whether r is base64 once blanks are dropped, as
// reencodeLong's base64.StdEncoding.DecodeString sees it.
func decodes(r io.Reader) (bool, error) {
	src := &dropSpaces{r: r}
	d := base64.NewDecoder(base64.StdEncoding, src)
	_, err := io.Copy(io.Discard, d)
	if src.err != nil {
		return false, src.err
	}
	return err == nil && src.n%4 == 0, nil
}

// write writes node n as the stages make it.
func (p *planner) write(w *lastWriter, n *node) error {
	copyNoNUL := func(from, to int64) error {
		_, err := io.Copy(w, &dropNUL{r: p.v.section(from, to)})
		return err
	}
	switch {
	case n.inner != nil:
		if n.from == 0 {
			if _, err := w.Write(n.header); err != nil {
				return err
			}
		} else if err := copyNoNUL(n.from, n.bodyFrom); err != nil {
			return err
		}
		return p.write(w, n.inner)
	case !n.leaf:
		if n.from == 0 {
			if _, err := w.Write(n.header); err != nil {
				return err
			}
		} else if err := copyNoNUL(n.from, n.bodyFrom); err != nil {
			return err
		}
		if err := copyNoNUL(n.bodyFrom, n.preamble); err != nil {
			return err
		}
		for _, pt := range n.parts {
			if err := copyNoNUL(pt.line, pt.lineEnd); err != nil {
				return err
			}
			if pt.n == nil {
				continue
			}
			if err := p.write(w, pt.n); err != nil {
				return err
			}
			if err := copyNoNUL(pt.n.to, pt.between); err != nil {
				return err
			}
		}
		if n.closed {
			return copyNoNUL(n.closeAt, n.to)
		}
		if p.opts.CloseParts {
			if w.last != '\n' && w.n > 0 {
				if _, err := io.WriteString(w, "\r\n"); err != nil {
					return err
				}
			}
			_, err := w.Write(append(append([]byte("\r\n"), n.delim...), "--\r\n"...))
			return err
		}
		return nil
	}
	// A leaf.
	if n.untouched {
		return copyNoNUL(n.from, n.to)
	}
	header := n.header
	if n.from == 0 {
		header = n.header // the top header, already made
	} else {
		if n.a != nil {
			header = n.a.header
		}
		if n.b != nil && n.b.header != nil {
			header = n.b.header
		}
	}
	if header == nil {
		if _, err := io.Copy(w, p.v.section(n.from, n.bodyFrom)); err != nil {
			return err
		}
	} else if _, err := w.Write(header); err != nil {
		return err
	}
	body := io.Reader(p.v.section(n.bodyFrom, n.to))
	endsLF := func(r io.Reader) (*lastReader, io.Reader) { lr := &lastReader{r: r}; return lr, lr }
	if n.a != nil {
		switch n.a.kind {
		case "drop":
			lr, r := endsLF(p.v.section(n.bodyFrom, n.to))
			body = sameEndingFunc(func() bool { return lr.last == '\n' }, &dropNUL{r: r})
		case "base64":
			lr, r := endsLF(p.v.section(n.bodyFrom, n.to))
			in := r
			if n.a.qpIn {
				in = &qpDecoder{r: bufio.NewReader(r)}
			}
			body = sameEndingFunc(func() bool { return lr.last == '\n' }, base64LinesReader(in))
		}
	}
	if n.b != nil {
		lr, in := endsLF(body)
		if p.closedAfter(n) {
			in = &crlfIfNotLF{r: in}
		}
		var out io.Reader
		switch n.b.kind {
		case "rewrap":
			out = base64LinesReader(base64.NewDecoder(base64.StdEncoding, &dropSpaces{r: in}))
		case "qp-text":
			src := in
			if n.b.qpIn {
				src = &qpDecoder{r: bufio.NewReader(in)}
			}
			out = crlfReader(qpReader(src))
		case "base64-raw":
			src := in
			if n.b.qpIn {
				src = &qpDecoder{r: bufio.NewReader(in)}
			}
			out = base64LinesReader(src)
		}
		closing := p.closedAfter(n)
		body = sameEndingFunc(func() bool { return closing || lr.last == '\n' }, out)
	}
	_, err := io.Copy(w, body)
	return err
}

// closedAfter reports whether leaf n is the last part of a multipart that
// closeParts closes, and so gains a line break before its second stage
// when it does not end with one.
func (p *planner) closedAfter(n *node) bool { return n.lastOfUnclosed && p.opts.CloseParts }

// lastWriter remembers the last byte written.
type lastWriter struct {
	w    io.Writer
	last byte
	n    int64
}

func (l *lastWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.last = p[n-1]
		l.n += int64(n)
	}
	return n, err
}

// lastReader remembers the last byte read.
type lastReader struct {
	r    io.Reader
	last byte
}

func (l *lastReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		l.last = p[n-1]
	}
	return n, err
}

// dropNUL leaves out NUL bytes.
type dropNUL struct{ r io.Reader }

func (d *dropNUL) Read(p []byte) (int, error) {
	for {
		n, err := d.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != 0 {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// dropSpaces leaves out blanks (dropSpace) and counts what it lets through.
type dropSpaces struct {
	r   io.Reader
	n   int
	err error
}

func (d *dropSpaces) Read(p []byte) (int, error) {
	for {
		n, err := d.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				p[k] = c
				k++
			}
		}
		d.n += k
		if err != nil && err != io.EOF {
			d.err = err
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// sameEndingReader is sameEnding for a stream: when the input did not end
// with a line break, a final CRLF of the output is left out.
func sameEndingReader(origEndsLF bool, r io.Reader) io.Reader {
	return sameEndingFunc(func() bool { return origEndsLF }, r)
}

// sameEndingFunc is sameEndingReader where whether the input ended with a
// line break is known only once the output is read to its end.
func sameEndingFunc(origEndsLF func() bool, r io.Reader) io.Reader {
	return &trimCRLF{r: r, keep: origEndsLF}
}

type trimCRLF struct {
	r    io.Reader
	keep func() bool
	held []byte
	buf  []byte
	done bool
}

func (t *trimCRLF) Read(p []byte) (int, error) {
	for {
		if t.done {
			if len(t.held) == 0 {
				return 0, io.EOF
			}
			n := copy(p, t.held)
			t.held = t.held[n:]
			return n, nil
		}
		if cap(t.buf) < len(p)+2 {
			t.buf = make([]byte, len(p)+2)
		}
		buf := t.buf[:len(p)+2]
		k0 := copy(buf, t.held)
		n, err := t.r.Read(buf[k0:])
		data := buf[:k0+n]
		if err == io.EOF {
			t.done = true
			if !t.keep() && bytes.HasSuffix(data, []byte("\r\n")) {
				data = data[:len(data)-2]
			}
			t.held = data
			continue
		}
		if err != nil {
			return 0, err
		}
		// Hold back the last two bytes: they may be the CRLF to leave out.
		k := max(0, len(data)-2)
		out := copy(p, data[:k])
		t.held = append(t.held[:0], data[out:]...)
		if out > 0 {
			return out, nil
		}
	}
}

// crlfIfNotLF adds a CRLF at the end when the input does not end with a
// line break.
type crlfIfNotLF struct {
	r    io.Reader
	last byte
	seen bool
	tail []byte
	done bool
}

func (c *crlfIfNotLF) Read(p []byte) (int, error) {
	if c.done {
		if len(c.tail) == 0 {
			return 0, io.EOF
		}
		n := copy(p, c.tail)
		c.tail = c.tail[n:]
		return n, nil
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.last, c.seen = p[n-1], true
	}
	if err == io.EOF {
		c.done = true
		if !c.seen || c.last != '\n' {
			c.tail = []byte("\r\n")
		}
		if n > 0 {
			return n, nil
		}
		return c.Read(p)
	}
	return n, err
}

// qpDecoder is decodeQP for a stream.
type qpDecoder struct {
	r   *bufio.Reader
	out []byte
}

func (q *qpDecoder) Read(p []byte) (int, error) {
	for len(q.out) == 0 {
		c, err := q.r.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != '=' {
			q.out = append(q.out, c)
			break
		}
		next, _ := q.r.Peek(2)
		switch {
		case len(next) >= 2 && next[0] == '\r' && next[1] == '\n':
			q.r.Discard(2)
		case len(next) >= 1 && next[0] == '\n':
			q.r.Discard(1)
		case len(next) >= 2 && isHex(next[0]) && isHex(next[1]):
			q.out = append(q.out, unhex(next[0])<<4|unhex(next[1]))
			q.r.Discard(2)
		default:
			q.out = append(q.out, c)
		}
	}
	n := copy(p, q.out)
	q.out = q.out[n:]
	return n, nil
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// base64LinesReader is base64Lines for a stream: 76 characters a line, each
// line ending with CRLF, and a CRLF at the end even when empty.
func base64LinesReader(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		lw := &lineWrap{w: bw}
		enc := base64.NewEncoder(base64.StdEncoding, lw)
		_, err := io.Copy(enc, r)
		if err == nil {
			err = enc.Close()
		}
		if err == nil {
			err = lw.close()
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// lineWrap writes a CRLF after every 76 bytes that more bytes follow, and
// one at the end.
type lineWrap struct {
	w   io.Writer
	col int
}

func (l *lineWrap) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if l.col == 76 {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return n, err
			}
			l.col = 0
		}
		k := min(len(p), 76-l.col)
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		l.col += k
		n += k
		p = p[k:]
	}
	return n, nil
}

func (l *lineWrap) close() error {
	_, err := io.WriteString(l.w, "\r\n")
	return err
}

// qpReader is the standard quoted-printable encoding of r.
func qpReader(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		w := quotedprintable.NewWriter(bw)
		_, err := io.Copy(w, r)
		if err == nil {
			err = w.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// crlfReader is toCRLF for a stream.
func crlfReader(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		w := &CRLFWriter{W: bw}
		_, err := io.Copy(w, r)
		if err == nil {
			err = w.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// ensureMIMEHeader is ensureMIME for a header alone.
func ensureMIMEHeader(header []byte) []byte {
	if ParseHeader(header).Get("MIME-Version") != "" {
		return header
	}
	return setField(header, "MIME-Version", "1.0")
}
