package mime

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"time"
	"unicode/utf8"
)

// Finding is one problem found in a message and what was done about it.
type Finding struct {
	Code   string `json:"code"`             // stable, for counting: nul, header-separator, xml-unwrapped...
	Text   string `json:"text"`             // a sentence for people
	Change string `json:"change,omitempty"` // what changed, when something did
}

// RepairOptions turn on the repairs a destination needs (the others are
// always applied when a message needs them).
type RepairOptions struct {
	// Date is used when a message without a header gets one; the time of
	// the run when zero.
	Date time.Time
	// EncodeHeaders RFC 2047-encodes 8-bit bytes in the header, for servers
	// that do not accept them (no UTF8=ACCEPT, RFC 6855).
	EncodeHeaders bool
	// FoldLines re-encodes parts with lines longer than 998 octets (RFC 5322
	// section 2.1.1), losslessly: quoted-printable for text, base64 else.
	FoldLines bool
	// CloseParts adds the missing close delimiter of a multipart (RFC 2046
	// section 5.1.1), for servers that refuse a message without one.
	CloseParts bool
}

// Repaired is the outcome of Repair.
type Repaired struct {
	Msg      []byte    // the message to send, CRLF line endings
	Findings []Finding // empty when nothing needed repair
	// Changed is true when the content changed (line endings aside): the
	// original must be kept, and Msg carries RepairHeader.
	Changed bool
	// Review is true when Msg is a readable stand-in built from an XML
	// record, not the original mail: it belongs in the review folder.
	Review bool
}

// Codes returns the findings' codes.
func (r Repaired) Codes() []string {
	out := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		out[i] = f.Code
	}
	return out
}

// RepairHeader names, in a repaired message, the repairs applied.
const RepairHeader = "X-Mailmove-Repair"

// Repair makes a message fit to be stored and read: line endings become
// CRLF; an empty message or one without a header gets a header; a header
// that runs into the body without an empty line gets one; a message wrapped
// in XML (Orange's x-me-engine) becomes the message inside, or a readable
// message with the XML attached; NUL bytes are encoded so none is lost; and,
// as opts ask, 8-bit header bytes and over-long lines are encoded. It is
// pure, never panics, and idempotent; a message that needs nothing comes
// back with only its line endings normalised.
func Repair(msg []byte, opts RepairOptions) Repaired {
	var r Repaired
	m := toCRLF(msg)
	find := func(code, text, change string) {
		r.Findings = append(r.Findings, Finding{Code: code, Text: text, Change: change})
		r.Changed = true
	}
	if opts.Date.IsZero() {
		opts.Date = time.Now()
	}

	if len(bytes.TrimSpace(bytes.ReplaceAll(m, []byte{0}, nil))) == 0 {
		m = synthetic(nil, opts.Date, "(empty message kept by mailmove)",
			"This message was empty on the source. mailmove copied this note in its place so that nothing is lost silently.\r\n")
		find("empty", "the message was empty (IMAP servers refuse zero-byte messages)", "replaced by a short note with a header")
		return r.finish(m)
	}

	m = r.fixHeader(m, opts.Date)
	for depth := 0; depth < 10; depth++ {
		x, ok := unwrapXML(m, opts.Date)
		if !ok {
			break
		}
		m = x.msg
		r.Findings = append(r.Findings, x.finding)
		r.Changed = true
		if x.review {
			r.Review = true
			break
		}
		m = r.fixHeader(m, opts.Date) // the message found inside is checked like any other
	}

	if bytes.IndexByte(m, 0) >= 0 {
		var changes []string
		out, changed := walkParts(m, 0, func(h, b []byte) ([]byte, []byte, bool) {
			if bytes.IndexByte(h, 0) >= 0 {
				changes = append(changes, fmt.Sprintf("%d NUL byte(s) removed from a part's header", bytes.Count(h, []byte{0})))
				h = bytes.ReplaceAll(h, []byte{0}, nil)
				if bytes.IndexByte(b, 0) < 0 {
					return h, b, true
				}
			}
			if bytes.IndexByte(b, 0) < 0 {
				return h, b, false
			}
			nh, nb, what := encodeNUL(h, b)
			changes = append(changes, what)
			return nh, sameEnding(b, nb), true
		})
		if n := bytes.Count(out, []byte{0}); n > 0 {
			// Left in a preamble, an epilogue or a delimiter line, which no
			// reader shows.
			out, changed = bytes.ReplaceAll(out, []byte{0}, nil), true
			changes = append(changes, fmt.Sprintf("%d NUL byte(s) removed outside any part", n))
		}
		if changed {
			m = ensureMIME(out)
			find("nul", "NUL bytes in the body (Dovecot would store them as 0x80, other servers refuse them)", strings.Join(changes, "; "))
		}
	}

	if opts.EncodeHeaders {
		if out, changes := encodeHeader8bit(m); len(changes) > 0 {
			why := header8bitWhy(m)
			m = out
			find("header-8bit", why,
				strings.Join(changes, "; "))
		}
	}

	if opts.CloseParts {
		if out, n := closeParts(m, 0); n > 0 {
			m = out
			find("multipart-unclosed", "a multipart part list that never ends (no close delimiter, RFC 2046 section 5.1.1)",
				fmt.Sprintf("%d close delimiter(s) added at the end of the parts, nothing removed", n))
		}
	}

	if opts.FoldLines {
		var changes []string
		out, changed := walkParts(m, 0, func(h, b []byte) ([]byte, []byte, bool) {
			if longestLine(b) <= 998 {
				return h, b, false
			}
			nh, nb, what := reencodeLong(h, b)
			changes = append(changes, what)
			return nh, sameEnding(b, nb), true
		})
		if changed {
			m = ensureMIME(out)
			find("long-lines", "lines longer than 998 octets (RFC 5322 section 2.1.1)", strings.Join(changes, "; "))
		}
	}
	return r.finish(m)
}

// fixHeader removes NUL bytes from the header, closes up "Name :", adds a
// header to text that has none, and an empty line where the header runs
// into the body.
func (r *Repaired) fixHeader(m []byte, date time.Time) []byte {
	find := func(code, text, change string) {
		r.Findings = append(r.Findings, Finding{Code: code, Text: text, Change: change})
		r.Changed = true
	}
	header, body := splitMessage(m)
	if bytes.IndexByte(header, 0) >= 0 {
		n := bytes.Count(header, []byte{0})
		header = bytes.ReplaceAll(header, []byte{0}, nil)
		m = append(append([]byte(nil), header...), body...)
		find("nul-header", "NUL bytes in the header, which no header may hold", fmt.Sprintf("%d NUL byte(s) removed from the header", n))
	}

	hs := scanHeader(m)
	if hs.fixName != nil {
		m = hs.fixName
		find("header-field-name", "header field names followed by blanks before the colon", "blanks before the colon removed")
		hs = scanHeader(m)
	}
	switch {
	case hs.headerless:
		m = synthetic(m, date, "(message without a header, kept by mailmove)", "")
		find("no-header", "the message has no header: it starts with text that is not a header field",
			"a header (From, Subject, Date, Message-ID) was added above the original text")
	case hs.insertAt >= 0:
		m = append(append(append([]byte(nil), m[:hs.insertAt]...), "\r\n"...), m[hs.insertAt:]...)
		find("header-separator", "no empty line between the header and the body",
			fmt.Sprintf("an empty line inserted at offset %d, where the header stops being header fields", hs.insertAt))
	}

	return m
}

func (r Repaired) finish(m []byte) Repaired {
	m = toCRLF(m)
	if r.Changed {
		m = append([]byte(RepairHeader+": "+strings.Join(r.Codes(), ", ")+"; original kept by mailmove\r\n"), m...)
	}
	r.Msg = m
	return r
}

// toCRLF normalises line endings: bare LF and bare CR become CRLF, and the
// message ends with a line break.
func toCRLF(b []byte) []byte {
	if IsCRLF(b) && (len(b) == 0 || bytes.HasSuffix(b, []byte("\r\n"))) {
		return b
	}
	var out bytes.Buffer
	w := &CRLFWriter{W: &out}
	w.Write(b)
	w.Close()
	return out.Bytes()
}

type headerScan struct {
	headerless bool
	insertAt   int    // where an empty line must go; -1 when none is missing
	fixName    []byte // the message with "Name :" made "Name:"
}

// validName reports whether s is a header field name: printable ASCII
// other than the colon (RFC 5322 section 2.2).
func validName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// scanHeader checks the header of a CRLF message line by line.
func scanHeader(m []byte) headerScan {
	hs := headerScan{insertAt: -1}
	rest := m
	first := true
	var spaced []int // offsets of "Name :" colons to close up
	for len(rest) > 0 {
		off := len(m) - len(rest)
		i := bytes.Index(rest, []byte("\r\n"))
		line := rest
		if i >= 0 {
			line = rest[:i]
			rest = rest[i+2:]
		} else {
			rest = nil
		}
		if len(line) == 0 {
			if first {
				hs.headerless = true
			}
			break // the empty line: the header ends well
		}
		if !first && (line[0] == ' ' || line[0] == '\t') {
			continue
		}
		name, _, ok := bytes.Cut(line, []byte{':'})
		trimmed := bytes.TrimRight(name, " \t")
		switch {
		case ok && validName(name):
		case ok && len(trimmed) < len(name) && validName(trimmed):
			spaced = append(spaced, off+len(trimmed))
		case first:
			hs.headerless = true
			return hs
		default:
			hs.insertAt = off
		}
		if hs.insertAt >= 0 {
			break
		}
		first = false
		if rest == nil {
			hs.insertAt = len(m) // the header never ended: the body is empty
		}
	}
	if len(spaced) > 0 {
		out := make([]byte, 0, len(m))
		prev := 0
		for _, at := range spaced {
			out = append(out, m[prev:at]...)
			j := at
			for j < len(m) && (m[j] == ' ' || m[j] == '\t') {
				j++
			}
			prev = j
		}
		hs.fixName = append(out, m[prev:]...)
	}
	return hs
}

// synthetic puts a header made by mailmove above text (which may be empty).
// Its Message-ID is derived from the text, so the same input always gives
// the same message.
func synthetic(text []byte, date time.Time, subject, note string) []byte {
	sum := sha256.Sum256(text)
	charset := "utf-8"
	if !utf8.Valid(text) {
		charset = "iso-8859-1" // every byte is a character: nothing is lost
	}
	var b bytes.Buffer
	writeSyntheticHead(&b, sum, charset, date, subject)
	b.WriteString(note)
	if len(bytes.TrimSpace(text)) > 0 {
		b.Write(bytes.TrimLeft(text, "\r\n"))
	}
	return toCRLF(b.Bytes())
}

// writeSyntheticHead writes the header synthetic puts above a text whose
// SHA-256 is sum.
func writeSyntheticHead(b *bytes.Buffer, sum [32]byte, charset string, date time.Time, subject string) {
	fmt.Fprintf(b, "From: mailmove <mailmove@localhost.invalid>\r\nSubject: %s\r\nDate: %s\r\n", subject, date.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(b, "Message-ID: <%s@mailmove.invalid>\r\nMIME-Version: 1.0\r\n", hex.EncodeToString(sum[:12]))
	fmt.Fprintf(b, "Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", charset)
}

// ensureMIME adds MIME-Version to a message whose parts were re-encoded:
// without it, readers ignore Content-Transfer-Encoding.
func ensureMIME(m []byte) []byte {
	header, body := splitMessage(m)
	if ParseHeader(header).Get("MIME-Version") != "" {
		return m
	}
	return append(setField(header, "MIME-Version", "1.0"), body...)
}

// encodeNUL encodes a leaf part holding NUL bytes as base64, decoding it
// first when it was quoted-printable; in base64 text, where NUL is not data,
// NULs are dropped.
func encodeNUL(h, b []byte) ([]byte, []byte, string) {
	cte := strings.ToLower(ParseHeader(h).Get("Content-Transfer-Encoding"))
	t, _ := contentType(ParseHeader(h))
	n := bytes.Count(b, []byte{0})
	switch cte {
	case "base64":
		return h, bytes.ReplaceAll(b, []byte{0}, nil), fmt.Sprintf("%s: %d NUL byte(s) dropped from base64 text (not data)", t, n)
	case "quoted-printable":
		b = decodeQP(b)
	}
	return setField(h, "Content-Transfer-Encoding", "base64"), base64Lines(b),
		fmt.Sprintf("%s: re-encoded as base64 to carry %d NUL byte(s)", t, n)
}

// reencodeLong re-encodes a leaf part whose lines are too long: text as
// quoted-printable, anything else as base64, decoding it first.
func reencodeLong(h, b []byte) ([]byte, []byte, string) {
	ph := ParseHeader(h)
	cte := strings.ToLower(ph.Get("Content-Transfer-Encoding"))
	t, _ := contentType(ph)
	switch cte {
	case "base64":
		if d, err := base64.StdEncoding.DecodeString(string(bytes.Map(dropSpace, b))); err == nil {
			return h, base64Lines(d), t + ": base64 lines rewrapped at 76"
		}
	case "quoted-printable":
		b = decodeQP(b)
	}
	if strings.HasPrefix(t, "text/") {
		var out bytes.Buffer
		w := quotedprintable.NewWriter(&out)
		w.Write(b)
		w.Close()
		return setField(h, "Content-Transfer-Encoding", "quoted-printable"), toCRLF(out.Bytes()), t + ": re-encoded as quoted-printable"
	}
	return setField(h, "Content-Transfer-Encoding", "base64"), base64Lines(b), t + ": re-encoded as base64"
}

// sameEnding drops the final line break of a re-encoded body when the
// original had none: inside a multipart, the break before the next
// delimiter belongs to the delimiter and is already there.
func sameEnding(orig, out []byte) []byte {
	if !bytes.HasSuffix(orig, []byte("\n")) {
		return bytes.TrimSuffix(out, []byte("\r\n"))
	}
	return out
}

func dropSpace(r rune) rune {
	if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
		return -1
	}
	return r
}

func base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(enc) > 76 {
		out.WriteString(enc[:76])
		out.WriteString("\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
	out.WriteString("\r\n")
	return out.Bytes()
}

// decodeQP decodes quoted-printable leniently: "=XX" and soft line breaks
// are decoded, every other byte is kept as it is.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		switch {
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			i += 2
		case i+1 < len(b) && b[i+1] == '\n':
			i++
		case i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]):
			v, _ := hex.DecodeString(string(b[i+1 : i+3]))
			out = append(out, v[0])
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return max(longest, len(b))
		}
		longest = max(longest, len(bytes.TrimSuffix(b[:i], []byte("\r"))))
		b = b[i+1:]
	}
	return longest
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// rawFields splits a raw CRLF header into fields, each with its
// continuation lines; the final empty line is a field of its own.
func rawFields(header []byte) [][]byte {
	var out [][]byte
	rest := header
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		end := len(rest)
		if i >= 0 {
			end = i + 2
		}
		line := rest[:end]
		if len(out) > 0 && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			out[len(out)-1] = append(out[len(out)-1], line...)
		} else {
			out = append(out, append([]byte(nil), line...))
		}
		rest = rest[end:]
	}
	return out
}

// fold breaks a header line at spaces so that lines stay under 78
// characters where the words allow it. It breaks only at a single space,
// which begins the next line: no line ends in white space, and no run of
// spaces is split, which readers would trim or collapse (net/textproto
// does both), so that unfolding gives back the line.
func fold(line string) string {
	if len(line) <= 78 {
		return line
	}
	var b strings.Builder
	col := 0
	for len(line) > 0 {
		sp := len(line) - len(strings.TrimLeft(line, " "))
		rest := line[sp:]
		n := strings.IndexByte(rest, ' ')
		if n < 0 {
			n = len(rest)
		}
		if col > 0 && sp == 1 && n > 0 && col+sp+n > 76 {
			b.WriteString("\r\n")
			col = 0
		}
		b.WriteString(line[:sp+n])
		col += sp + n
		line = rest[n:]
	}
	return b.String()
}

// Probe watches a message as it streams past and tells whether Repair could
// change more than its line endings, so that only those messages are read
// into memory. It keeps the header (Header) and the start of the body, never
// more. The zero value is ready.
type Probe struct {
	head      []byte // the header and up to bodyPrefix bytes of body
	headerEnd int    // where the body starts in head; 0 until the empty line is seen
	size      int64
	nul       bool
	nonSpace  bool
	line      int // length of the current line
	longest   int
}

const (
	probeHead  = 256 << 10 // a longer header is not a header
	bodyPrefix = 8 << 10   // enough to see an XML document start, encoded or not
)

// Write implements io.Writer; it never fails.
func (p *Probe) Write(b []byte) (int, error) {
	n := len(b)
	if len(p.head) < p.limit() {
		if p.headerEnd == 0 && len(p.head) == 0 {
			// Most often the first write holds the whole header: find its
			// end before copying, so as to copy no more than needed.
			if e := HeaderEnd(b[:min(len(b), probeHead)]); e < min(len(b), probeHead) {
				p.headerEnd = e
			}
		}
		p.head = append(p.head, b[:min(len(b), p.limit()-len(p.head))]...)
		// Writes come in large chunks (io.Copy), so rescanning is cheap; an
		// empty line at the very end of head is seen with the next write.
		if p.headerEnd == 0 {
			if e := HeaderEnd(p.head); e < len(p.head) {
				p.headerEnd = e
			}
		}
	}
	p.size += int64(len(b))
	if !p.nul && bytes.IndexByte(b, 0) >= 0 {
		p.nul = true
	}
	if !p.nonSpace && len(bytes.TrimSpace(b)) > 0 {
		p.nonSpace = true
	}
	for len(b) > 0 {
		i := IndexEOL(b)
		if i < 0 {
			p.line += len(b)
			break
		}
		p.line += i
		p.longest = max(p.longest, p.line)
		p.line = 0
		b = b[i+1:]
	}
	p.longest = max(p.longest, p.line)
	return n, nil
}

func (p *Probe) limit() int {
	if p.headerEnd > 0 {
		return p.headerEnd + bodyPrefix
	}
	return probeHead
}

// Header returns the message's header as it streamed past (all of it up to
// the empty line, at most 256 KB).
func (p *Probe) Header() []byte {
	if p.headerEnd > 0 {
		return p.head[:p.headerEnd]
	}
	return p.head
}

// Header8bit reports whether the header holds 8-bit bytes.
func (p *Probe) Header8bit() bool { return has8bit(p.Header()) }

// Longest returns the length of the longest line, line break excluded.
func (p *Probe) Longest() int { return p.longest }

// Needs reports whether Repair with opts could change the message.
func (p *Probe) Needs(opts RepairOptions) bool {
	if p.nul || !p.nonSpace {
		return true
	}
	m := toCRLF(p.head)
	complete := p.size == int64(len(p.head)) // the whole message is in head
	hs := scanHeader(m)
	if hs.headerless || hs.fixName != nil || hs.insertAt >= 0 && (complete || hs.insertAt < len(m)) {
		return true
	}
	header, body := splitMessage(m)
	h := ParseHeader(header)
	for _, f := range h {
		if strings.EqualFold(f.Name, "x-me-engine") {
			return true
		}
	}
	if t, _ := contentType(h); !strings.HasPrefix(t, "multipart/") {
		b := bytes.TrimLeft(decodePrefix(h.Get("Content-Transfer-Encoding"), body), " \t\r\n\xef\xbb\xbf")
		if len(b) > 0 && b[0] == '<' {
			return true
		}
	}
	if t, _ := contentType(h); opts.CloseParts && strings.HasPrefix(t, "multipart/") {
		return true // whether it ends is only known at its end: Repair looks
	}
	return opts.EncodeHeaders && has8bit(header) || opts.FoldLines && p.longest > 998
}

// HeaderDiff lists the header fields a repair removed ("- Name: value") and
// added ("+ Name: value"), and the size of the body before and after, for a
// before/after view of a repair.
func HeaderDiff(before, after []byte) []string {
	bh, bb := splitMessage(toCRLF(before))
	ah, ab := splitMessage(after)
	key := func(f Field) string { return f.Name + ": " + strings.Join(strings.Fields(f.Value), " ") }
	count := map[string]int{}
	for _, f := range ParseHeader(ah) {
		count[key(f)]++
	}
	var out []string
	for _, f := range ParseHeader(bh) {
		if k := key(f); count[k] > 0 {
			count[k]--
		} else {
			out = append(out, "- "+k)
		}
	}
	for _, f := range ParseHeader(ah) {
		if k := key(f); count[k] > 0 {
			count[k]--
			out = append(out, "+ "+k)
		}
	}
	if !bytes.Equal(bb, ab) {
		out = append(out, fmt.Sprintf("body: %d bytes before, %d after", len(bb), len(ab)))
	}
	return out
}
