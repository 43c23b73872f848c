package mime

import (
	"bytes"
	"io"
)

// CRLFWriter passes a message through to W with every line break (LF or a lone
// CR) written as CRLF, as IMAP APPEND requires (RFC 3501 section 6.3.11), and
// guarantees the message ends with a line break once Close is called. It
// counts the bytes it writes. A message that is already CRLF passes unchanged.
type CRLFWriter struct {
	W io.Writer
	N int64 // bytes written to W

	afterCR bool
	last    byte // last byte written, 0 before the first
}

func (c *CRLFWriter) out(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := c.W.Write(b)
	c.N += int64(n)
	c.last = b[len(b)-1]
	return err
}

func (c *CRLFWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.afterCR {
			c.afterCR = false
			if p[0] == '\n' {
				if err := c.out([]byte{'\n'}); err != nil {
					return 0, err
				}
				p = p[1:]
				continue
			}
			// A lone CR: complete it.
			if err := c.out([]byte{'\n'}); err != nil {
				return 0, err
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
		switch {
		case p[0] == '\r' && len(p) == 1:
			if err := c.out(p); err != nil { // its LF may come next
				return 0, err
			}
			c.afterCR = true
		default: // a bare LF, or a lone CR
			if err := c.out([]byte{'\r', '\n'}); err != nil {
				return 0, err
			}
		}
		p = p[1:]
	}
	return n, nil
}

// crlfPrefix returns the length of p's longest prefix that needs no change:
// up to the first bare LF, lone CR, or a CR ending p (its LF may follow).
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

// Close completes a pending CR and adds a final CRLF when the message lacks one.
// It does not close W.
func (c *CRLFWriter) Close() error {
	if c.afterCR {
		c.afterCR = false
		return c.out([]byte{'\n'})
	}
	if c.last != 0 && c.last != '\n' {
		return c.out([]byte{'\r', '\n'})
	}
	return nil
}

// IsCRLF reports whether every line break in b is a CRLF and b ends with one.
func IsCRLF(b []byte) bool {
	if len(b) == 0 || !bytes.HasSuffix(b, []byte{'\r', '\n'}) {
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
