package imap

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	imapv2 "github.com/emersion/go-imap/v2"

	"github.com/mailmove/mailmove/migrate"
)

// namespaceLine reads the first personal namespace of a NAMESPACE
// response (RFC 2342 section 5): prefix, and delimiter unless NIL.
var namespaceLine = regexp.MustCompile(`(?i)^\* NAMESPACE \(\("([^"]*)" (?:"(\\\\|[^"])"|NIL)`)

// rawBox is one LIST answer read by listRaw.
type rawBox struct {
	name  string
	delim rune
	attrs []imapv2.MailboxAttr
}

// listRaw lists the folders over a connection of its own, reading each LIST
// line apart: go-imap gives up on the whole listing, and the connection, at
// the first folder name that is not valid modified UTF-7 (RFC 3501 section
// 5.1.3), which a server that let a client create it will list for ever.
// Such folders are left out and named in skipped: mailmove never writes to
// them, and the others are copied.
func listRaw(ctx context.Context, cfg Config) (boxes []rawBox, ns *migrate.Namespace, skipped []string, err error) {
	c, err := dialPipe(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	defer c.logout()
	if c.caps["NAMESPACE"] || c.caps["IMAP4REV2"] {
		c.tag++
		tag := fmt.Sprintf("p%d", c.tag)
		if err := c.writeLine(tag + " NAMESPACE"); err != nil {
			return nil, nil, nil, err
		}
		for {
			l, err := c.readLine()
			if err != nil {
				return nil, nil, nil, err
			}
			c.debug("S: " + l)
			if m := namespaceLine.FindStringSubmatch(l); m != nil {
				d, _ := utf8.DecodeRuneInString(m[2])
				if m[2] == "" {
					d = 0
				}
				ns = &migrate.Namespace{Prefix: m[1], Delim: d}
			}
			if strings.HasPrefix(l, tag+" ") {
				break
			}
		}
	}
	line := `LIST "" "*"`
	if c.caps["SPECIAL-USE"] {
		line += " RETURN (SPECIAL-USE)"
	}
	c.tag++
	tag := fmt.Sprintf("p%d", c.tag)
	c.debug("C: " + tag + " " + line)
	if err := c.writeLine(tag + " " + line); err != nil {
		return nil, nil, nil, err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return nil, nil, nil, err
		}
		c.debug("S: " + l)
		if strings.HasPrefix(l, tag+" ") {
			if err := c.status(l[len(tag)+1:]); err != nil {
				return nil, nil, nil, fmt.Errorf("list folders: %w", err)
			}
			return boxes, ns, skipped, nil
		}
		if !strings.HasPrefix(strings.ToUpper(l), "* LIST ") {
			continue
		}
		b, raw, err := parseList(l[len("* LIST "):], c.utf8)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%q (%v)", raw, err))
			continue
		}
		boxes = append(boxes, b)
	}
}

// parseList reads `(attrs) delim name` of a LIST response.
func parseList(s string, utf8Names bool) (b rawBox, raw string, err error) {
	if !strings.HasPrefix(s, "(") {
		return b, s, errors.New("no attribute list")
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return b, s, errors.New("no attribute list")
	}
	for _, a := range strings.Fields(s[1:end]) {
		b.attrs = append(b.attrs, imapv2.MailboxAttr(a))
	}
	s = strings.TrimPrefix(s[end+1:], " ")
	switch {
	case strings.HasPrefix(strings.ToUpper(s), "NIL"):
		s = s[3:]
	case strings.HasPrefix(s, `"\\"`):
		b.delim, s = '\\', s[4:]
	case len(s) >= 3 && s[0] == '"':
		r, n := utf8.DecodeRuneInString(s[1:])
		b.delim, s = r, s[2+n:]
	default:
		return b, s, errors.New("no delimiter")
	}
	s = strings.TrimPrefix(s, " ")
	switch {
	case strings.HasPrefix(s, `"`):
		raw = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(strings.TrimSuffix(s[1:], `"`))
	case strings.HasPrefix(s, "{"): // a literal, inlined by readLine after CRLF
		if i := strings.Index(s, "\r\n"); i >= 0 {
			raw = s[i+2:]
		}
	default:
		raw = s
	}
	if strings.EqualFold(raw, "INBOX") {
		b.name = "INBOX"
		return b, raw, nil
	}
	if utf8Names {
		// UTF8=ACCEPT enabled: names are UTF-8 (RFC 6855 section 3).
		if !utf8.ValidString(raw) {
			return b, raw, errors.New("not UTF-8")
		}
		b.name = raw
		return b, raw, nil
	}
	b.name, err = decodeMailbox(raw)
	return b, raw, err
}

// decodeMailbox reads a folder name in modified UTF-7 (RFC 3501 section
// 5.1.3), strictly: what encodeMailbox writes, and what it would write for
// the same name, and nothing else.
func decodeMailbox(s string) (string, error) {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errors.New("not modified UTF-7: a byte outside printable ASCII")
		}
		if c != '&' {
			out.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errors.New("not modified UTF-7: an & without its -")
		}
		enc := s[i+1 : i+1+j]
		i += j + 1
		if enc == "" {
			out.WriteByte('&')
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(enc, ",", "/"))
		if err != nil || len(raw)%2 != 0 {
			return "", errors.New("not modified UTF-7: bad base64")
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(u) {
			if r < 0x80 && r >= 0x20 || r == utf8.RuneError {
				return "", errors.New("not modified UTF-7: an encoded ASCII or invalid character")
			}
			out.WriteRune(r)
		}
	}
	return out.String(), nil
}
