package mime

import (
	"bytes"
	"io"
)

// CRLFWriter passes a message through to W with every line break written as
// CRLF, as IMAP APPEND requires (RFC 3501 section 6.3.11), and guarantees the
// message ends with a line break once Close is called. A line break is a LF
// with any CRs right before it (CR CR LF, which old Outlook versions and
// broken gateways write, is one break, not two), or a CR that no LF follows
// (old Mac mail). It counts the bytes it writes. A message that is already
// CRLF passes unchanged.
type CRLFWriter struct {
	W io.Writer
	N int64 // bytes written to W
	// Collapsed counts the CRs dropped from CR CR LF runs: each of them was
	// a line break of its own for mailmove 0.1, whose copies were 2 bytes
	// longer per collapsed CR. Runs says where, up to maxRuns of them (see
	// OldForm).
	Collapsed int64
	Runs      []CRRun

	crs   int  // CRs seen and not yet written: a LF may still follow
	last  byte // last byte written
	wrote bool // anything was (a message may end with a NUL byte)
}

var crlf = []byte{'\r', '\n'}

func (c *CRLFWriter) out(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := c.W.Write(b)
	c.N += int64(n)
	c.last, c.wrote = b[len(b)-1], true
	return err
}

// loneCRs writes the pending CRs, which no LF followed, as a break each.
func (c *CRLFWriter) loneCRs() error {
	for ; c.crs > 0; c.crs-- {
		if err := c.out(crlf); err != nil {
			return err
		}
	}
	return nil
}

func (c *CRLFWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.crs > 0 {
			switch p[0] {
			case '\r':
				c.crs++
				p = p[1:]
				continue
			case '\n':
				if c.crs > 1 {
					c.Collapsed += int64(c.crs - 1)
					if len(c.Runs) < maxRuns {
						c.Runs = append(c.Runs, CRRun{At: c.N, Extra: c.crs - 1})
					}
				}
				c.crs = 0
				if err := c.out(crlf); err != nil {
					return 0, err
				}
				p = p[1:]
				continue
			default:
				if err := c.loneCRs(); err != nil {
					return 0, err
				}
			}
		}
		// What is already CRLF goes through in one write.
		if k := crlfPrefix(p); k > 0 {
			if err := c.out(p[:k]); err != nil {
				return 0, err
			}
			p = p[k:]
			continue
		}
		if p[0] == '\r' {
			c.crs = 1 // what follows decides
		} else if err := c.out(crlf); err != nil { // a bare LF
			return 0, err
		}
		p = p[1:]
	}
	return n, nil
}

// CRRun is a CR CR LF run the writer made one line break: At is where its
// CRLF starts in the output, Extra the CRs dropped.
type CRRun struct {
	At    int64
	Extra int
}

// maxRuns bounds the runs a CRLFWriter remembers: a message with more is
// not worth recognising in its 0.1 form.
const maxRuns = 4096

// OldForm returns out, written by a CRLFWriter that met runs, as mailmove
// 0.1 wrote it, when every CR of a CR CR LF run was a line break of its own:
// so that a copy made then is still recognised. complete is false when the
// writer met more runs than it remembers.
func OldForm(out io.Reader, w *CRLFWriter) (old io.Reader, complete bool) {
	var total int64
	for _, r := range w.Runs {
		total += int64(r.Extra)
	}
	return &oldForm{r: out, runs: w.Runs}, total == w.Collapsed
}

type oldForm struct {
	r     io.Reader
	runs  []CRRun
	pos   int64 // in out
	extra int   // bytes of CRLF still to insert here
}

func (o *oldForm) Read(p []byte) (int, error) {
	if o.extra == 0 && len(o.runs) > 0 && o.runs[0].At == o.pos {
		o.extra = 2 * o.runs[0].Extra
		o.runs = o.runs[1:]
	}
	if o.extra > 0 && len(p) > 0 {
		// o.extra counts the bytes of the CRLFs still to insert.
		n := 0
		for n < len(p) && o.extra > 0 {
			p[n] = "\r\n"[o.extra%2]
			n++
			o.extra--
		}
		return n, nil
	}
	if len(o.runs) > 0 && int64(len(p)) > o.runs[0].At-o.pos {
		p = p[:o.runs[0].At-o.pos]
	}
	n, err := o.r.Read(p)
	o.pos += int64(n)
	return n, err
}

// crlfPrefix returns the length of p's longest prefix that needs no change:
// up to the first bare LF, the first CR not right before a LF, or a CR
// ending p (its LF may follow).
func crlfPrefix(p []byte) int {
	pos := 0
	for pos < len(p) {
		i := bytes.IndexByte(p[pos:], '\n')
		end := len(p)
		if i >= 0 {
			end = pos + i
		}
		if j := bytes.IndexByte(p[pos:end], '\r'); j >= 0 && pos+j != end-1 {
			return pos + j // a CR not right before the LF (or before the end)
		}
		if i < 0 {
			if end > pos && p[end-1] == '\r' {
				return end - 1
			}
			return end
		}
		if end == pos || p[end-1] != '\r' {
			return end // a bare LF
		}
		pos = end + 1
	}
	return pos
}

// IndexEOL returns the index of the first CR or LF in p, or -1: what
// bytes.IndexAny(p, "\r\n") returns, several times faster on long lines.
func IndexEOL(p []byte) int {
	i := bytes.IndexByte(p, '\n')
	scan := p
	if i >= 0 {
		scan = p[:i]
	}
	if j := bytes.IndexByte(scan, '\r'); j >= 0 {
		return j
	}
	return i
}

// breakLen returns the length of the line break at the start of p (p[0] is
// CR or LF): a LF with the CRs before it, or one lone CR.
func breakLen(p []byte) int {
	i := 0
	for i < len(p) && p[i] == '\r' {
		i++
	}
	if i < len(p) && p[i] == '\n' {
		return i + 1
	}
	return 1
}

// Close writes pending CRs as breaks and adds a final CRLF when the message
// lacks one. It does not close W.
func (c *CRLFWriter) Close() error {
	if c.crs > 0 {
		return c.loneCRs()
	}
	if c.wrote && c.last != '\n' {
		return c.out(crlf)
	}
	return nil
}

// IsCRLF reports whether every line break in b is a CRLF and b ends with one.
func IsCRLF(b []byte) bool {
	if len(b) == 0 || !bytes.HasSuffix(b, crlf) {
		return false
	}
	for i, c := range b {
		switch c {
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return false
			}
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return false
			}
		}
	}
	return true
}
