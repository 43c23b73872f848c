package pop3

import (
	"bufio"
	"io"
)

// dotReader decodes a POP3 multi-line response body (RFC 1939 section 3):
// a line starting with "." has that dot removed, and a line holding only "."
// ends the body. It is byte-exact and streams: there is no limit on the
// length of a line, and nothing but the terminator is altered.
type dotReader struct {
	br        *bufio.Reader
	lineStart bool
	done      bool
}

func newDotReader(br *bufio.Reader) *dotReader {
	return &dotReader{br: br, lineStart: true}
}

func (d *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if d.done {
			break
		}
		if d.lineStart {
			if n > 0 && d.br.Buffered() == 0 {
				break // hand back what we have rather than wait for the next line
			}
			b, err := d.br.Peek(1)
			if err != nil {
				return n, unexpected(err)
			}
			if b[0] == '.' {
				end, err := d.terminator()
				if err != nil {
					return n, err
				}
				if end {
					d.done = true
					continue
				}
				d.br.Discard(1) // a byte-stuffed dot
			}
			d.lineStart = false
		}
		if d.br.Buffered() == 0 {
			if n > 0 {
				break // hand back what we have rather than block
			}
			if _, err := d.br.Peek(1); err != nil {
				return n, unexpected(err)
			}
		}
		buf, _ := d.br.Peek(d.br.Buffered())
		k := len(p) - n
		if k > len(buf) {
			k = len(buf)
		}
		for i, c := range buf[:k] {
			if c == '\n' {
				k = i + 1
				d.lineStart = true
				break
			}
		}
		copy(p[n:], buf[:k])
		d.br.Discard(k)
		n += k
	}
	if d.done && n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// drain reads to the end of the body, so the session stays in step.
func (d *dotReader) drain() error {
	_, err := io.Copy(io.Discard, d)
	return err
}

// terminator reports, at a line starting with ".", whether the line is the
// end of the body (".\r\n", or ".\n" from broken servers) and consumes it.
// It never asks for a byte the server need not send.
func (d *dotReader) terminator() (bool, error) {
	b, err := d.br.Peek(2)
	if len(b) < 2 {
		return false, unexpected(err)
	}
	switch b[1] {
	case '\n':
		d.br.Discard(2)
		return true, nil
	case '\r':
		b, err = d.br.Peek(3)
		if len(b) < 3 {
			return false, unexpected(err)
		}
		if b[2] == '\n' {
			d.br.Discard(3)
			return true, nil
		}
	}
	return false, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
