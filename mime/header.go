package mime

import (
	"bytes"
	"strings"
)

// Field is one header field as it appears in a message: the name as written and
// the value with folding line breaks removed (RFC 5322 section 2.2.3).
type Field struct {
	Name  string
	Value string
}

// Header is a message's header fields in their original order.
type Header []Field

// Get returns the value of the first field named name (any case), trimmed.
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return strings.TrimSpace(f.Value)
		}
	}
	return ""
}

// Values returns the trimmed values of every field named name, topmost first.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			out = append(out, strings.TrimSpace(f.Value))
		}
	}
	return out
}

// HeaderEnd returns the offset in msg where the body starts: just after the
// first empty line, or len(msg) when the header never ends.
func HeaderEnd(msg []byte) int {
	rest := msg
	for len(rest) > 0 {
		var line []byte
		line, rest = nextLine(rest)
		if len(line) == 0 {
			return len(msg) - len(rest)
		}
	}
	return len(msg)
}

// nextLine splits b at its first line break (a LF with the CRs right before
// it, or a lone CR: see CRLFWriter) and returns the line without the break
// and the rest.
func nextLine(b []byte) (line, rest []byte) {
	i := IndexEOL(b)
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+breakLen(b[i:]):]
}

// ParseHeader reads the header fields at the start of msg, stopping at the
// first empty line. It accepts CRLF, LF and CR line endings and is lenient:
// a line that is neither a field nor a continuation ends the header, as most
// mail readers do, and nothing here ever fails.
func ParseHeader(msg []byte) Header {
	var h Header
	for len(msg) > 0 {
		var line []byte
		line, msg = nextLine(msg)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h) > 0 {
				h[len(h)-1].Value += string(line)
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		name = bytes.TrimRight(name, " \t")
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			break
		}
		h = append(h, Field{Name: string(name), Value: string(value)})
	}
	return h
}

// RemoveFields returns a raw header without the fields (with their
// continuation lines) whose names drop selects, and the names removed. Every
// other byte, malformed lines included, is kept as it is; when nothing is
// removed the header itself is returned.
func RemoveFields(header []byte, drop func(name string) bool) ([]byte, []string) {
	var out []byte
	var removed []string
	dropping := false
	rest := header
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		}
		off := len(header) - len(rest)
		rest = rest[len(line):]
		if line[0] == ' ' || line[0] == '\t' {
			if dropping {
				continue
			}
		} else {
			dropping = false
			name, _, ok := bytes.Cut(line, []byte{':'})
			name = bytes.TrimRight(name, " \t")
			if ok && len(name) > 0 && !bytes.ContainsAny(name, " \t\r\n") && drop(string(name)) {
				if out == nil {
					out = append(make([]byte, 0, len(header)), header[:off]...)
				}
				dropping = true
				removed = append(removed, string(name))
				continue
			}
		}
		if out != nil {
			out = append(out, line...)
		}
	}
	if out == nil {
		return header, nil
	}
	return out, removed
}
