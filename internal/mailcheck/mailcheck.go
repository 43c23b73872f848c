// Package mailcheck is the tests' own idea of "the mail arrived as it was":
// a reference written apart from the code under test (it uses nothing of
// package mime), so that a bug there cannot hide itself by making the
// expectation too.
//
// A stored message is as it was when it equals the source with its line
// breaks made CRLF, or when the only change is mailmove's header-8bit
// repair, which must keep every header field's text: the fields, in order,
// read the same once their encoded words (RFC 2047), parameter encodings
// (RFC 2231) and quoting are undone, and the body is untouched.
package mailcheck

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CRLF is the source as IMAP must store it: every LF (with any CRs right
// before it) and every CR no LF follows becomes CRLF, and the message ends
// with a line break.
func CRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/16+2)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			j := i
			for j < len(b) && b[j] == '\r' {
				j++
			}
			if j < len(b) && b[j] == '\n' {
				out = append(out, '\r', '\n')
				i = j
			} else {
				out = append(out, '\r', '\n')
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, b[i])
		}
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return out
}

// Key names a message by what a reader sees of it: two messages with the
// same key are the same mail, one of them possibly header-8bit-repaired. A
// stored message repaired in any other way has a key no source has.
func Key(msg []byte) string {
	m := CRLF(msg)
	head, body := split(m)
	fields := unfold(head)
	if len(fields) > 0 && strings.HasPrefix(strings.ToLower(fields[0]), "x-mailmove-repair:") {
		if !strings.Contains(strings.ToLower(fields[0]), ": header-8bit;") {
			sum := sha256.Sum256(m)
			return "repaired otherwise:" + string(sum[:])
		}
		fields = fields[1:]
	}
	h := sha256.New()
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		fmt.Fprintf(h, "%s\x00%s\x00", strings.ToLower(strings.TrimSpace(name)), text(strings.ToLower(strings.TrimSpace(name)), value))
	}
	h.Write([]byte{1})
	h.Write(body)
	return string(h.Sum(nil))
}

// Exact reports whether stored is msg with CRLF line breaks, byte for byte.
func Exact(msg, stored []byte) bool { return bytes.Equal(CRLF(msg), stored) }

func split(m []byte) (head, body []byte) {
	if bytes.HasPrefix(m, []byte("\r\n")) {
		return nil, m[2:]
	}
	if i := bytes.Index(m, []byte("\r\n\r\n")); i >= 0 {
		return m[:i+2], m[i+4:]
	}
	return m, nil
}

// unfold returns the header's fields with their continuation lines joined.
func unfold(head []byte) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(head), "\r\n"), "\r\n") {
		if len(out) > 0 && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			out[len(out)-1] += line
			continue
		}
		out = append(out, line)
	}
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}

var words = mime.WordDecoder{}

// text is what a reader makes of a field's value: its characters, decoded,
// without the punctuation and blanks that encoding may move around.
func text(name, v string) string {
	v = latin1Fallback(v)
	if name == "content-type" || name == "content-disposition" {
		if t, params, err := mime.ParseMediaType(v); err == nil {
			var b strings.Builder
			b.WriteString(t)
			for k, p := range params {
				b.WriteString(";" + k + "=" + p)
			}
			return sorted(b.String())
		}
	}
	if d, err := words.DecodeHeader(v); err == nil {
		v = d
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || strings.ContainsRune(`"<>:;,()\`, r) {
			return -1
		}
		return r
	}, v)
}

// sorted puts parameters in order, so that their order does not count.
func sorted(s string) string {
	parts := strings.Split(s, ";")
	for i := 1; i < len(parts); i++ {
		for j := i; j > 1 && parts[j] < parts[j-1]; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	return strings.Join(parts, ";")
}

// latin1Fallback reads bytes that are not UTF-8 as Latin-1.
func latin1Fallback(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n <= 1 {
			r = rune(s[0])
		}
		b.WriteRune(r)
		s = s[n:]
	}
	return b.String()
}

// Tally compares a source mailbox with what a destination folder holds:
// every distinct source message once (by Key), nothing else.
func Tally(src [][]byte, stored [][]byte) (missing, doubled, foreign int) {
	want := map[string]bool{}
	for _, m := range src {
		want[Key(m)] = true
	}
	have := map[string]int{}
	for _, s := range stored {
		have[Key(s)]++
	}
	for k := range want {
		switch have[k] {
		case 0:
			missing++
		case 1:
		default:
			doubled++
		}
	}
	for k := range have {
		if !want[k] {
			foreign++
		}
	}
	return
}

// ArrivalDate is when a message arrived, by the standard library's reading
// of it and nothing of mailmove's: the date after the last ";" of its
// topmost Received: field (RFC 5321 section 4.4: the last server to take
// it prepends its line), else its Date:. ok is false when neither reads.
func ArrivalDate(msg []byte) (when time.Time, ok bool) {
	m, err := mail.ReadMessage(bytes.NewReader(CRLF(msg)))
	if err != nil {
		return time.Time{}, false
	}
	if rec := m.Header["Received"]; len(rec) > 0 {
		if j := strings.LastIndexByte(rec[0], ';'); j >= 0 {
			if d, err := mail.ParseDate(strings.TrimSpace(rec[0][j+1:])); err == nil {
				return d, true
			}
		}
	}
	d, err := m.Header.Date()
	return d, err == nil
}
