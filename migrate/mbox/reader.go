// Package mbox reads mbox files, as Thunderbird, mutt, pine and most Unix
// mail tools write them, and is mailmove's mbox source.
//
// The reader is our own (go-mbox splits at any "From " line, does not undo
// mboxrd quoting, drops the From_ line and cannot resume at an offset). It
// streams: memory is bounded by one header and one buffered line chunk, so a
// file of many gigabytes is read in a few hundred kilobytes.
//
// Framing follows the family described in RFC 4155 and by qmail's mbox(5):
// a message starts at a From_ line that opens the file or follows an empty
// line, or, as procmail writes after a message without a final line break,
// a valid From_ line followed by a header field. A Content-Length field (mboxcl, mboxcl2) is trusted only when it lands
// exactly on the next From_ line or on the end of the file.
package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Format is an mbox flavour: how body lines that start with "From " were
// protected when the file was written.
type Format int

const (
	// Auto reads mboxrd, and for a message framed by a valid Content-Length
	// undoes no quoting when its body holds a bare "From " line (mboxcl2 never
	// quotes; mboxcl quotes like mboxo, which mboxrd unquoting also undoes).
	Auto Format = iota
	RD          // mboxrd: ">From ", ">>From "... lose one '>'
	O           // mboxo: only ">From " loses its '>'
	CL          // mboxcl: mboxo quoting plus Content-Length
	CL2         // mboxcl2: Content-Length, no quoting
)

var formatNames = map[string]Format{"auto": Auto, "mboxrd": RD, "mboxo": O, "mboxcl": CL, "mboxcl2": CL2}

// ParseFormat reads a format name: auto, mboxrd, mboxo, mboxcl or mboxcl2.
func ParseFormat(s string) (Format, error) {
	f, ok := formatNames[strings.ToLower(s)]
	if !ok {
		return Auto, fmt.Errorf("unknown mbox format %q (want auto, mboxrd, mboxo, mboxcl or mboxcl2)", s)
	}
	return f, nil
}

func (f Format) String() string {
	for n, v := range formatNames {
		if v == f {
			return n
		}
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// ErrNotMbox means the data does not start with a From_ line.
var ErrNotMbox = errors.New("not an mbox file: it does not start with a \"From \" line")

// Warning is something odd found while reading, with the byte offset where it
// is. The message it concerns is still delivered whole.
type Warning struct {
	Offset int64
	Text   string
}

func (w Warning) String() string { return fmt.Sprintf("offset %d: %s", w.Offset, w.Text) }

// Message is one message's framing. Its content is read from the reader
// returned beside it by Next.
type Message struct {
	Offset int64  // where the From_ line starts
	End    int64  // just after the message and the empty line that closes it; set once its content is read
	From   string // the From_ line, without its line break
	Sender string // the From_ line's envelope sender ("-" for Thunderbird)
	// Date is the From_ line's date: the delivery time. Zero when it has
	// none or it cannot be read. ZoneGiven is false when the line gave no
	// zone and Date was read in the reader's location.
	Date      time.Time
	ZoneGiven bool
	// Header is the header section, raw, including the empty line that ends
	// it when there is one.
	Header []byte
	// ContentLength is true when a Content-Length field framed the message.
	ContentLength bool
	Warnings      []Warning
}

const (
	bufSize   = 64 << 10
	headerMax = 1 << 20 // a longer header is read on as body
	fromMax   = 1 << 10 // a From_ line is short; a longer line is not one
)

// Reader reads the messages of one mbox file in order.
type Reader struct {
	ra     io.ReaderAt
	size   int64
	pos    int64 // file offset of br's next byte
	br     *bufio.Reader
	format Format
	loc    *time.Location
	first  bool
	cur    *body
	next   []byte // a From_ line already read by the previous message's body
	nextAt int64
	err    error
}

// NewReader reads the mbox ra of size bytes from offset start, which must be
// the start of the file or of a From_ line. From_ dates without a zone are
// read in loc (time.Local when nil).
func NewReader(ra io.ReaderAt, size, start int64, format Format, loc *time.Location) *Reader {
	if loc == nil {
		loc = time.Local
	}
	return &Reader{
		ra: ra, size: size, pos: start, format: format, loc: loc, first: true,
		br: bufio.NewReaderSize(io.NewSectionReader(ra, start, size-start), bufSize),
	}
}

// Offset is the file offset of the next message, once the previous message's
// content has been read to the end.
func (r *Reader) Offset() int64 {
	if r.next != nil {
		return r.nextAt
	}
	return r.pos
}

// Next returns the next message and its body, with quoting undone and line
// breaks as in the file: the message's content is m.Header followed by the
// body. The body reader is valid until the next call; what is left unread of
// it is skipped. Next returns
// io.EOF after the last message, ErrNotMbox when the data does not start
// with a From_ line.
func (r *Reader) Next() (*Message, io.Reader, error) {
	if r.err != nil {
		return nil, nil, r.err
	}
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			r.err = err
			return nil, nil, err
		}
		r.cur = nil
	}
	m, err := r.open()
	if err != nil {
		r.err = err
		return nil, nil, err
	}
	b := &body{r: r, m: m, atStart: true, remaining: -1, quoting: r.format, afterBlank: endsBlank(m.Header)}
	if err := r.frame(m, b); err != nil {
		r.err = err
		return nil, nil, err
	}
	r.cur = b
	return m, b, nil
}

// open reads the From_ line and the header.
func (r *Reader) open() (*Message, error) {
	line, at := r.next, r.nextAt
	r.next = nil
	if line == nil {
		if r.first {
			// Tolerate empty lines before the first message.
			for {
				b, err := r.br.Peek(2)
				if len(b) > 0 && b[0] == '\n' {
					r.discard(1)
					continue
				}
				if len(b) == 2 && b[0] == '\r' && b[1] == '\n' {
					r.discard(2)
					continue
				}
				if len(b) == 0 && err != nil {
					return nil, eof(err)
				}
				break
			}
		}
		at = r.pos
		var err error
		line, err = r.readLine(fromMax)
		if len(line) == 0 {
			return nil, eof(err)
		}
		if !bytes.HasPrefix(line, []byte("From ")) {
			if r.first {
				return nil, ErrNotMbox
			}
			return nil, fmt.Errorf("offset %d: expected a From_ line, found %q", at, clip(line))
		}
	}
	r.first = false
	m := &Message{Offset: at, From: string(trimEOL(line))}
	var ok bool
	m.Sender, m.Date, m.ZoneGiven, ok = ParseFromLine(m.From, r.loc)
	if !ok {
		m.Warnings = append(m.Warnings, Warning{at, "the From_ line has no readable date"})
	}
	whole := true // hl starts a line
	for {
		hl, err := r.readLine(bufSize)
		m.Header = append(m.Header, hl...)
		if len(hl) == 0 || whole && isBlank(hl) {
			if err != nil && err != io.EOF {
				return nil, err
			}
			return m, nil
		}
		if hl[len(hl)-1] != '\n' {
			// A chunk of a very long line, or the end of the file.
			if err == io.EOF {
				m.Warnings = append(m.Warnings, Warning{r.pos, "the file ends inside this message's header: the last message may be truncated"})
				return m, nil
			}
			if err != nil && err != bufio.ErrBufferFull {
				return nil, err
			}
		}
		whole = hl[len(hl)-1] == '\n'
		if len(m.Header) >= headerMax {
			m.Warnings = append(m.Warnings, Warning{r.pos, "header longer than 1 MiB: the rest is read as body"})
			return m, nil
		}
	}
}

// frame decides how the body ends: at a Content-Length that lands exactly on
// the next message or the end of the file, else at the next separator.
func (r *Reader) frame(m *Message, b *body) error {
	cl, ok := contentLength(m.Header)
	if !ok {
		return nil
	}
	end := r.pos + cl
	if end > r.size || !r.landsOnMessage(end) {
		m.Warnings = append(m.Warnings, Warning{m.Offset, fmt.Sprintf(
			"Content-Length %d does not end at a message boundary: ignored, the message ends at the next From_ line", cl)})
		return nil
	}
	m.ContentLength = true
	b.remaining = cl
	switch r.format {
	case Auto:
		// An unquoted "From " line proves the writer did not quote.
		b.quoting = RD
		hit, err := containsFromLine(io.NewSectionReader(r.ra, r.pos, cl))
		if err != nil {
			return err
		}
		if hit {
			b.quoting = CL2
		}
	case RD, O:
		b.quoting = r.format
	}
	return nil
}

// landsOnMessage reports whether offset end is the end of the file or the
// start of a From_ line, allowing one empty line between.
func (r *Reader) landsOnMessage(end int64) bool {
	if end == r.size {
		return true
	}
	buf := make([]byte, fromMax+2)
	n, _ := r.ra.ReadAt(buf, end)
	buf = buf[:n]
	switch {
	case bytes.HasPrefix(buf, []byte("\r\n")):
		buf = buf[2:]
	case bytes.HasPrefix(buf, []byte("\n")):
		buf = buf[1:]
	}
	if len(buf) == 0 {
		return end+int64(n) == r.size
	}
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		return false
	}
	_, _, _, ok := ParseFromLine(string(trimEOL(buf[:i+1])), r.loc)
	return ok && bytes.HasPrefix(buf, []byte("From "))
}

// readLine reads one line of at most max bytes (a longer line comes in
// chunks), advancing pos.
func (r *Reader) readLine(max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.pos += int64(len(chunk))
		out = append(out, chunk...)
		if err != bufio.ErrBufferFull || len(out) >= max {
			return out, err
		}
	}
}

func (r *Reader) discard(n int) {
	k, _ := r.br.Discard(n)
	r.pos += int64(k)
}

func eof(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

// body streams a message's body with quoting undone.
type body struct {
	r          *Reader
	m          *Message
	out        []byte // what Read hands out next: a window on buf
	buf        []byte // reused for every line
	held       []byte // an empty line that may be the separator's
	afterBlank bool   // the previous line was empty
	atStart    bool
	remaining  int64 // bytes left under Content-Length framing; -1 otherwise
	quoting    Format
	done       bool
}

func (b *body) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.done {
			return 0, io.EOF
		}
		if err := b.step(); err != nil {
			b.done = true
			return 0, err
		}
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

func (b *body) finish() {
	b.done = true
	b.m.End = b.r.Offset()
}

func (b *body) step() error {
	r := b.r
	if b.remaining == 0 {
		// Skip the empty line written after the message, if any.
		if p, _ := r.br.Peek(2); len(p) > 0 && p[0] == '\n' {
			r.discard(1)
		} else if len(p) == 2 && p[0] == '\r' && p[1] == '\n' {
			r.discard(2)
		}
		b.finish()
		return nil
	}
	var line []byte
	var err error
	if b.remaining > 0 {
		var p []byte
		p, err = r.br.Peek(int(min(b.remaining, int64(r.br.Size()))))
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			p = p[:i+1]
		}
		line = append(b.buf[:0], p...)
		r.discard(len(p))
		b.remaining -= int64(len(p))
		if len(p) == 0 {
			b.m.Warnings = append(b.m.Warnings, Warning{r.pos, "the file ends before the message's Content-Length: the last message is truncated"})
			b.finish()
			return nil
		}
		err = nil
	} else {
		var chunk []byte
		chunk, err = r.br.ReadSlice('\n')
		start := r.pos
		r.pos += int64(len(chunk))
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return err
		}
		if err == io.EOF && len(chunk) == 0 {
			b.finish() // a held empty line was the file's closing one
			return nil
		}
		whole := err == nil
		if b.atStart && whole && isBlank(chunk) {
			b.out = append(b.buf[:0], b.held...)
			b.buf = b.out
			b.held = append(b.held[:0], chunk...)
			b.afterBlank = true
			return nil
		}
		if b.atStart && whole && bytes.HasPrefix(chunk, []byte("From ")) {
			// Peeking past the line invalidates chunk: keep a copy.
			chunk = append([]byte(nil), chunk...)
			if b.separator(chunk) {
				if !b.afterBlank {
					// procmail writes no empty line after a message that
					// lacked its final line break; mutt and Thunderbird
					// read such a From_ line as a separator too.
					b.m.Warnings = append(b.m.Warnings, Warning{start,
						"a message separator with no empty line before it (procmail writes them so after a message without a final line break)"})
				}
				r.next, r.nextAt = chunk, start
				b.held = b.held[:0]
				b.finish()
				return nil
			}
			if b.afterBlank {
				b.m.Warnings = append(b.m.Warnings, Warning{start,
					"a line starting with \"From \" after an empty line is not a valid message separator: kept in the message"})
			}
		}
		line = append(b.buf[:0], b.held...)
		b.held, b.afterBlank = b.held[:0], false
		mark := len(line)
		line = append(line, chunk...)
		if b.atStart {
			line = append(line[:mark], line[mark+b.quoteLen(line[mark:]):]...)
		}
		b.atStart = whole
		if err == io.EOF {
			b.m.Warnings = append(b.m.Warnings, Warning{r.pos, "the file does not end with a line break: the last message may be truncated"})
			b.out, b.buf = line, line
			b.finish()
			return nil
		}
		b.out, b.buf = line, line
		return nil
	}
	if b.atStart {
		line = line[b.quoteLen(line):]
	}
	b.atStart = len(line) > 0 && line[len(line)-1] == '\n'
	b.out, b.buf = line, line
	return nil
}

// separator reports whether a "From " line after an empty line starts a new
// message: it must be a valid From_ line followed by a header field. The
// second test keeps an unquoted "From " line in an mboxo body from
// splitting the message.
func (b *body) separator(line []byte) bool {
	if _, _, _, ok := ParseFromLine(string(trimEOL(line)), b.r.loc); !ok {
		return false
	}
	p, _ := b.r.br.Peek(min(b.r.br.Size(), 1024))
	if len(p) == 0 {
		return true // a From_ line at the very end: an empty message
	}
	return looksLikeField(p)
}

// quoteLen is how many '>' to remove from the start of a body line.
func (b *body) quoteLen(line []byte) int {
	n := 0
	for n < len(line) && line[n] == '>' {
		n++
	}
	if n == 0 || !bytes.HasPrefix(line[n:], []byte("From ")) {
		return 0
	}
	switch b.quoting {
	case CL2:
		return 0
	case O, CL:
		if n != 1 {
			return 0
		}
	}
	return 1
}

// looksLikeField reports whether p starts with a header field or another
// From_ line.
func looksLikeField(p []byte) bool {
	if bytes.HasPrefix(p, []byte("From ")) {
		return true
	}
	for i, c := range p {
		switch {
		case c == ':':
			return i > 0
		case c <= ' ' || c > '~':
			return false
		}
	}
	return false
}

func containsFromLine(r io.Reader) (bool, error) {
	br := bufio.NewReaderSize(r, bufSize)
	atStart := true
	for {
		chunk, err := br.ReadSlice('\n')
		if atStart && bytes.HasPrefix(chunk, []byte("From ")) {
			return true, nil
		}
		atStart = err == nil
		if err == io.EOF {
			return false, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return false, err
		}
	}
}

// contentLength finds a Content-Length field in a raw header.
func contentLength(h []byte) (int64, bool) {
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		line := h
		if i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "content-length") {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}

// endsBlank reports whether a raw header ends with an empty line.
func endsBlank(h []byte) bool {
	return isBlank(h) || bytes.HasSuffix(h, []byte("\n\n")) || bytes.HasSuffix(h, []byte("\n\r\n"))
}

func isBlank(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func clip(b []byte) string {
	b = trimEOL(b)
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

var weekdays = map[string]bool{"Mon": true, "Tue": true, "Wed": true, "Thu": true, "Fri": true, "Sat": true, "Sun": true}

// fromLayouts are the date forms found after the sender on From_ lines,
// fields joined by single spaces: asctime(3), which every writer uses, with
// the optional zone that some add, and the minute-only form of old writers.
var fromLayouts = []struct {
	layout string
	zone   bool
}{
	{"Mon Jan 2 15:04:05 2006", false},
	{"Mon Jan 2 15:04:05 2006 -0700", true},
	{"Mon Jan 2 15:04:05 -0700 2006", true},
	{"Mon Jan 2 15:04:05 MST 2006", true},
	{"Mon Jan 2 15:04:05 MST -0700 2006", true},
	{"Mon Jan 2 15:04 2006", false},
	{"Mon Jan 2 15:04 MST 2006", true},
}

// ParseFromLine reads a From_ line: "From SENDER DATE". It reports ok only
// when the line has a date in asctime form (RFC 4155 appendix A), read in loc
// when the line gives no zone.
func ParseFromLine(line string, loc *time.Location) (sender string, date time.Time, zoneGiven bool, ok bool) {
	rest, found := strings.CutPrefix(line, "From ")
	if !found {
		return "", time.Time{}, false, false
	}
	fields := strings.Fields(rest)
	for i, f := range fields {
		if !weekdays[strings.TrimSuffix(f, ",")] {
			continue
		}
		s := strings.Join(fields[i:], " ")
		for _, l := range fromLayouts {
			var t time.Time
			var err error
			if l.zone {
				t, err = time.Parse(l.layout, s)
			} else {
				t, err = time.ParseInLocation(l.layout, s, loc)
			}
			if err == nil {
				return strings.Join(fields[:i], " "), t, l.zone, true
			}
		}
	}
	if len(fields) > 0 {
		sender = fields[0]
	}
	return sender, time.Time{}, false, false
}
