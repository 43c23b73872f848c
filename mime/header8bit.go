package mime

import (
	"bytes"
	"fmt"
	stdmime "mime"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Header fields whose value is a list of addresses (RFC 5322 section 3.6.2
// and 3.6.3, and the usual extensions).
var addressFields = map[string]bool{
	"from": true, "sender": true, "reply-to": true, "to": true, "cc": true, "bcc": true,
	"resent-from": true, "resent-sender": true, "resent-to": true, "resent-cc": true, "resent-bcc": true,
	"mail-followup-to": true, "mail-reply-to": true, "disposition-notification-to": true, "return-receipt-to": true,
}

// encodeHeader8bit rewrites every field of the top-level header that holds
// 8-bit bytes so that none is left, losslessly for a reader:
//   - in text (Subject, Comments, X- fields...), the words holding 8-bit
//     bytes become RFC 2047 encoded words, the spaces and tabs between
//     words kept as they were;
//   - in an address field, display names and group names become encoded
//     words, and an address whose own bytes are 8-bit (an internationalised
//     address, RFC 6532) is written as RFC 6857 section 3.1.5 downgrades it:
//     an empty group whose display name is the encoded name and address, so
//     the reader still sees who it was; addresses in ASCII stay as written;
//   - in Content-Type and Content-Disposition, the parameters holding 8-bit
//     bytes are written with RFC 2231 encoding (a file name "résumé.pdf"),
//     the others (a boundary) as they were;
//   - whatever else (an 8-bit Message-ID) has its 8-bit words encoded.
//
// Bytes that are not UTF-8 are read as Latin-1, each on its own, where
// every byte is a character. It returns what it did, one phrase per field
// changed.
func encodeHeader8bit(m []byte) ([]byte, []string) {
	header, body := splitMessage(m)
	var changes []string
	var out bytes.Buffer
	for _, f := range rawFields(header) {
		if !has8bit(f) {
			out.Write(f)
			continue
		}
		name, value, ok := bytes.Cut(f, []byte{':'})
		if !ok {
			out.Write(f)
			continue
		}
		v := strings.Trim(unfoldValue(string(value)), " \t")
		lname := strings.ToLower(strings.TrimSpace(string(name)))
		var enc, how string
		switch {
		case addressFields[lname]:
			enc, how = encodeAddresses(v)
		case lname == "content-type" || lname == "content-disposition":
			enc, how = encodeParams(v)
		default:
			enc, how = encodeWords(v), "RFC 2047-encoded"
			if !utf8.ValidString(v) {
				how = "bytes that are not UTF-8 read as Latin-1; " + how
			}
		}
		if has8bit([]byte(enc)) { // cannot happen; never send 8-bit after all
			enc, how = encodeWords(v), "RFC 2047-encoded"
		}
		changes = append(changes, fmt.Sprintf("%s: %s", name, how))
		out.WriteString(fold(string(name)+": "+enc) + "\r\n")
	}
	return append(out.Bytes(), body...), changes
}

// header8bitWhy says why a message's 8-bit header bytes are encoded: the
// server does not take them, or they are not UTF-8, which is all RFC 6855
// lets a server take.
func header8bitWhy(m []byte) string {
	if header, _ := splitMessage(m); !utf8.Valid(header) {
		return "8-bit bytes in the header that are not UTF-8 (an old client's Latin-1?), which no IMAP server is meant to take as they are (RFC 6855 allows UTF-8 only)"
	}
	return "8-bit bytes in the header, which this server does not take as they are (no UTF8=ACCEPT, RFC 6855)"
}

// unfoldValue joins a field's lines (RFC 5322 section 2.2.3): the line
// breaks go, the white space that follows them stays.
func unfoldValue(v string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(v)
}

// toUTF8 returns s as UTF-8 and its charset: what is UTF-8 stays, and each
// byte that is not (a Latin-1 é in a field written by an old client beside
// UTF-8 from a newer one) is read as Latin-1, where every byte is a
// character.
func toUTF8(s string) (string, string) {
	if utf8.ValidString(s) {
		return s, "utf-8"
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
	return b.String(), "iso-8859-1"
}

// encodeWords encodes each run of words holding 8-bit bytes as encoded
// words (RFC 2047 section 5, rule 1: unstructured text). Words are split at
// ASCII spaces and tabs only, and every space and tab stays: between two
// words of a run inside the encoded text, elsewhere as it was.
func encodeWords(v string) string {
	var out strings.Builder
	run := ""     // the words of the run so far, with the space between them
	pending := "" // white space after the last word, not yet placed
	flush := func() {
		if run != "" {
			u, _ := toUTF8(run)
			out.WriteString(stdmime.QEncoding.Encode("utf-8", u))
			run = ""
		}
	}
	for len(v) > 0 {
		n := strings.IndexAny(v, " \t")
		if n == 0 {
			m := len(v) - len(strings.TrimLeft(v, " \t"))
			pending += v[:m]
			v = v[m:]
			continue
		}
		if n < 0 {
			n = len(v)
		}
		w := v[:n]
		v = v[n:]
		if has8bit([]byte(w)) {
			if run != "" {
				run += pending
			} else {
				out.WriteString(pending)
			}
			run += w
		} else {
			flush()
			out.WriteString(pending + w)
		}
		pending = ""
	}
	flush()
	out.WriteString(pending)
	return out.String()
}

// phrase writes a display name as RFC 5322 wants it in ASCII: an encoded
// word when it holds more than ASCII (RFC 2047 section 5, rule 3, where "@"
// and "." must be encoded too: errata 3955 of RFC 6857).
func phrase(s string) string {
	if s == "" {
		return ""
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		for i := 0; i < len(s); i++ {
			if !isAtext(s[i]) && s[i] != ' ' {
				return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
			}
		}
		return s
	}
	var b strings.Builder
	b.WriteString("=?utf-8?q?")
	for _, c := range []byte(s) {
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!*+-/", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	b.WriteString("?=")
	return b.String()
}

// addrItem is one element of an address list: an address (text), or a
// group with its display name and members (RFC 5322 section 3.4).
type addrItem struct {
	text    string
	group   bool
	name    string
	members []string
}

// splitAddresses splits an address list at its top-level commas, keeping a
// group whole, and quoted strings, comments and angle addresses intact. It
// fails on a list that does not close what it opens.
func splitAddresses(s string) ([]addrItem, bool) {
	var items []addrItem
	var cur strings.Builder
	var g *addrItem
	quoted, angle, comment := false, false, 0
	end := func() {
		t := strings.TrimSpace(cur.String())
		cur.Reset()
		if g != nil {
			if t != "" {
				g.members = append(g.members, t)
			}
		} else if t != "" {
			items = append(items, addrItem{text: t})
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (quoted || comment > 0) && i+1 < len(s):
			cur.WriteByte(c)
			i++
			c = s[i]
		case quoted:
			quoted = c != '"'
		case comment > 0:
			if c == '(' {
				comment++
			} else if c == ')' {
				comment--
			}
		case c == '"':
			quoted = true
		case c == '(':
			comment++
		case angle:
			angle = c != '>'
		case c == '<':
			angle = true
		case c == ',':
			end()
			continue
		case c == ':' && g == nil:
			g = &addrItem{group: true, name: strings.TrimSpace(cur.String())}
			cur.Reset()
			continue
		case c == ';' && g != nil:
			end()
			items = append(items, *g)
			g = nil
			continue
		}
		cur.WriteByte(c)
	}
	if quoted || angle || comment > 0 || g != nil {
		return nil, false
	}
	end()
	return items, true
}

// unquote reads a display name: the text of a quoted string, else the
// words as they are.
func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(s)-1; i++ {
			if s[i] == '\\' && i+1 < len(s)-1 {
				i++
			}
			b.WriteByte(s[i])
		}
		return b.String()
	}
	return s
}

// encodeAddress rewrites one address holding 8-bit bytes in ASCII; intl
// tells it was an internationalised address, written as an empty group,
// which a group cannot hold.
func encodeAddress(text string) (out string, intl bool, ok bool) {
	if !has8bit([]byte(text)) {
		return text, false, true
	}
	a, err := mail.ParseAddress(text)
	if err != nil {
		return "", false, false
	}
	if has8bit([]byte(a.Address)) {
		return phrase(strings.TrimSpace(a.Name+" "+a.Address)) + " :;", true, true
	}
	if a.Name == "" {
		return "<" + a.Address + ">", false, true
	}
	return phrase(a.Name) + " <" + a.Address + ">", false, true
}

// encodeAddresses rewrites an address list holding 8-bit bytes in ASCII.
func encodeAddresses(v string) (string, string) {
	u, charset := toUTF8(v)
	latin := ""
	if charset != "utf-8" {
		latin = "bytes that are not UTF-8 read as Latin-1; "
	}
	whole := func() (string, string) {
		// Not a list we can read (a broken field): the whole value as the
		// display name of an empty group, as RFC 6857 does with what it
		// cannot downgrade otherwise.
		return phrase(u) + " :;", latin + "unreadable as addresses, kept whole as the name of an empty group (RFC 6857)"
	}
	items, ok := splitAddresses(u)
	if !ok || len(items) == 0 {
		return whole()
	}
	var parts []string
	intl := 0
	for _, it := range items {
		if !it.group {
			a, i, ok := encodeAddress(it.text)
			if !ok {
				return whole()
			}
			if i {
				intl++
			}
			parts = append(parts, a)
			continue
		}
		var members []string
		for _, m := range it.members {
			a, i, ok := encodeAddress(m)
			if !ok || i {
				return whole() // groups do not nest: no downgraded address inside one
			}
			members = append(members, a)
		}
		parts = append(parts, phrase(unquote(it.name))+": "+strings.Join(members, ", ")+";")
	}
	how := "display names RFC 2047-encoded"
	if intl > 0 {
		how = fmt.Sprintf("%d internationalised address(es) written as RFC 6857 downgrades them (an empty group named after it), names RFC 2047-encoded", intl)
	}
	return strings.Join(parts, ", "), latin + how
}

// encodeParams rewrites Content-Type or Content-Disposition with the
// parameters holding 8-bit bytes in RFC 2231 form (section 4: charset,
// empty language, percent-encoded octets); the type and every other
// parameter stay as they were.
func encodeParams(v string) (string, string) {
	latin := ""
	if !utf8.ValidString(v) {
		latin = "bytes that are not UTF-8 read as Latin-1; "
	}
	var parts []string
	quoted, from := false, 0
	for i := 0; i < len(v); i++ {
		switch {
		case quoted && v[i] == '\\':
			i++
		case v[i] == '"':
			quoted = !quoted
		case v[i] == ';' && !quoted:
			parts = append(parts, v[from:i])
			from = i + 1
		}
	}
	parts = append(parts, v[from:])
	out := []string{strings.TrimSpace(parts[0])}
	if has8bit([]byte(out[0])) {
		out[0] = encodeWords(out[0])
	}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		name, val, ok := strings.Cut(p, "=")
		if !has8bit([]byte(p)) {
			out = append(out, p)
			continue
		}
		name = strings.TrimSpace(name)
		if !ok || has8bit([]byte(name)) {
			out = append(out, encodeWords(p))
			continue
		}
		val = unquote(val)
		switch star := strings.IndexByte(name, '*'); {
		case strings.EqualFold(name, "boundary"):
			// Its octets as they are, not read as Latin-1: they are
			// matched against the body's delimiter lines.
			out = append(out, name+"*=utf-8''"+percent(val, false))
		case strings.HasSuffix(name, "*"):
			// Already extended (charset'language'value): only its raw
			// 8-bit octets are percent-encoded.
			out = append(out, name+"="+percent(val, true))
		case star >= 0 && name[star+1:] != "0":
			out = append(out, name+"*="+percent(toUTF8Only(val), false)) // a continuation (section 3)
		default:
			out = append(out, name+"*=utf-8''"+percent(toUTF8Only(val), false))
		}
	}
	return strings.Join(out, "; "), latin + "parameters RFC 2231-encoded"
}

func toUTF8Only(s string) string { u, _ := toUTF8(s); return u }

// percent writes s as RFC 2231 extended-value octets: attribute-char as it
// is, every other octet %XX; with only8bit, the ASCII is left alone.
func percent(s string, only8bit bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && (only8bit || c > ' ' && c < 0x7f && strings.IndexByte("*'%()<>@,;:\\\"/[]?=", c) < 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// isAtext reports whether c may appear in an atom (RFC 5322 section 3.2.3).
func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
