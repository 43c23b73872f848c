package migrate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
)

// Difference is where a message stored at the destination first differs
// from what was sent: a server that changes what it stores (Cyrus puts an X
// in place of each 8-bit header byte) is found out by it.
type Difference struct {
	Offset     int64  `json:"offset"`    // of the first differing byte
	Line       int    `json:"line"`      // its line, from 1
	InHeader   bool   `json:"in_header"` // before the empty line that ends the header
	Sent       string `json:"sent"`      // the bytes sent from there (a few, quoted)
	Stored     string `json:"stored"`    // the bytes stored from there
	SentSize   int64  `json:"sent_size"`
	StoredSize int64  `json:"stored_size"`
}

func (d *Difference) String() string {
	where := "body"
	if d.InHeader {
		where = "header"
	}
	return fmt.Sprintf("differs at byte %d (line %d, %s): sent %s, stored %s (%d bytes sent, %d stored)",
		d.Offset, d.Line, where, d.Sent, d.Stored, d.SentSize, d.StoredSize)
}

// excerpt is the start of b up to the end of its line, at most 40 bytes,
// quoted so that control and 8-bit bytes show.
func excerpt(b []byte) string {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	if len(b) > 40 {
		b = b[:40]
	}
	if len(b) == 0 {
		return "(end of line)"
	}
	return strconv.QuoteToASCII(string(b))
}

// compareWriter compares what is written to it with want, byte for byte.
type compareWriter struct {
	want     *bufio.Reader
	n        int64
	line     int
	inHeader bool
	lineLen  int // bytes of the current line so far
	diff     *Difference
	stored   []byte // what was stored from the first difference on
	buf      []byte
}

func newCompareWriter(want io.Reader) *compareWriter {
	return &compareWriter{want: bufio.NewReaderSize(want, 64<<10), line: 1, inHeader: true}
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if c.diff != nil {
		if len(c.stored) < 40 {
			c.stored = append(c.stored, p[:min(len(p), 40-len(c.stored))]...)
		}
		c.n += int64(len(p))
		return len(p), nil
	}
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	w := c.buf[:len(p)]
	got, _ := io.ReadFull(c.want, w)
	for i := 0; i < len(p); i++ {
		if i >= got || p[i] != w[i] {
			sent := w[i:got]
			if more, _ := c.want.Peek(40); len(sent) < 40 {
				sent = append(append([]byte(nil), sent...), more...)
			}
			c.diff = &Difference{Offset: c.n + int64(i), Line: c.line, InHeader: c.inHeader, Sent: excerpt(sent)}
			if len(sent) == 0 {
				c.diff.Sent = "(end of message)"
			}
			c.stored = append(c.stored[:0], p[i:min(len(p), i+40)]...)
			break
		}
		c.track(p[i])
	}
	c.n += int64(len(p))
	return len(p), nil
}

func (c *compareWriter) track(b byte) {
	switch b {
	case '\n':
		if c.inHeader && c.lineLen == 0 {
			c.inHeader = false
		}
		c.line++
		c.lineLen = 0
	case '\r':
	default:
		c.lineLen++
	}
}

// result finishes the comparison: sent is the size of what was sent.
func (c *compareWriter) result(sent int64) *Difference {
	if c.diff == nil && c.n != sent {
		// Everything stored was as sent, and the rest is missing.
		c.diff = &Difference{Offset: c.n, Line: c.line, InHeader: c.inHeader, Stored: "(end of message)"}
		rest, _ := c.want.Peek(40)
		c.diff.Sent = excerpt(rest)
		return c.sizes(sent)
	}
	if c.diff != nil {
		c.diff.Stored = excerpt(c.stored)
		return c.sizes(sent)
	}
	return nil
}

func (c *compareWriter) sizes(sent int64) *Difference {
	c.diff.SentSize, c.diff.StoredSize = sent, c.n
	return c.diff
}

// Compare fetches message uid of folder and compares it with body, the
// content sent: nil when the server stored exactly that.
func Compare(ctx context.Context, dst Destination, folder string, uid uint32, body *Body) (*Difference, error) {
	cw := newCompareWriter(body.Open())
	if err := dst.FetchBody(ctx, folder, uid, cw); err != nil {
		return nil, err
	}
	return cw.result(body.Size()), nil
}
