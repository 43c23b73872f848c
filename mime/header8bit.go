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
//     bytes become RFC 2047 encoded words;
//   - in an address field, display names become encoded words, and an
//     address whose own bytes are 8-bit (an internationalised address, RFC
//     6532) is written as RFC 6857 section 3.1.5 downgrades it: an empty
//     group whose display name is the encoded name and address, so the
//     reader still sees who it was;
//   - in Content-Type and Content-Disposition, parameters are written with
//     RFC 2231 encoding (a file name "résumé.pdf");
//   - whatever else (an 8-bit Message-ID) has its 8-bit words encoded.
//
// Bytes that are not UTF-8 are read as Latin-1, where every byte is a
// character. It returns what it did, one phrase per field changed.
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
		v := strings.Join(strings.Fields(string(value)), " ")
		lname := strings.ToLower(strings.TrimSpace(string(name)))
		var enc, how string
		switch {
		case addressFields[lname]:
			enc, how = encodeAddresses(v)
		case lname == "content-type" || lname == "content-disposition":
			enc, how = encodeParams(v), "parameters RFC 2231-encoded"
		default:
			enc, how = encodeWords(v), "RFC 2047-encoded"
		}
		if has8bit([]byte(enc)) { // cannot happen; never send 8-bit after all
			enc, how = encodeWords(v), "RFC 2047-encoded"
		}
		changes = append(changes, fmt.Sprintf("%s: %s", name, how))
		out.WriteString(fold(string(name)+": "+enc) + "\r\n")
	}
	return append(out.Bytes(), body...), changes
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
// words (RFC 2047 section 5, rule 1: unstructured text).
func encodeWords(v string) string {
	words := strings.Split(v, " ")
	var out, run []string
	flush := func() {
		if len(run) == 0 {
			return
		}
		s := strings.Join(run, " ")
		charset := "utf-8"
		if !utf8.ValidString(s) {
			charset = "iso-8859-1"
		}
		out = append(out, stdmime.QEncoding.Encode(charset, s))
		run = nil
	}
	for _, w := range words {
		if has8bit([]byte(w)) {
			run = append(run, w)
			continue
		}
		flush()
		out = append(out, w)
	}
	flush()
	return strings.Join(out, " ")
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

// encodeAddresses rewrites an address list holding 8-bit bytes in ASCII.
func encodeAddresses(v string) (string, string) {
	u, charset := toUTF8(v)
	list, err := mail.ParseAddressList(u)
	if err != nil || len(list) == 0 {
		// Not a list we can read (group syntax, a broken field): the whole
		// value as the display name of an empty group, as RFC 6857 does
		// with what it cannot downgrade otherwise.
		how := "unreadable as addresses, kept whole as the name of an empty group (RFC 6857)"
		if charset != "utf-8" {
			how = "bytes that are not UTF-8 read as Latin-1; " + how
		}
		return phrase(u) + " :;", how
	}
	var parts []string
	intl := 0
	for _, a := range list {
		if has8bit([]byte(a.Address)) {
			intl++
			name := strings.TrimSpace(a.Name + " " + a.Address)
			parts = append(parts, phrase(name)+" :;")
			continue
		}
		if a.Name == "" {
			parts = append(parts, "<"+a.Address+">")
			continue
		}
		parts = append(parts, phrase(a.Name)+" <"+a.Address+">")
	}
	how := "display names RFC 2047-encoded"
	if intl > 0 {
		how = fmt.Sprintf("%d internationalised address(es) written as RFC 6857 downgrades them (an empty group named after it), names RFC 2047-encoded", intl)
	}
	if charset != "utf-8" {
		how = "bytes that are not UTF-8 read as Latin-1; " + how
	}
	return strings.Join(parts, ", "), how
}

// encodeParams rewrites Content-Type or Content-Disposition with its
// parameters in RFC 2231 form.
func encodeParams(v string) string {
	u, _ := toUTF8(v)
	t, params, err := stdmime.ParseMediaType(u)
	if err == nil {
		if out := stdmime.FormatMediaType(t, params); out != "" {
			return out
		}
	}
	return encodeWords(v)
}

// isAtext reports whether c may appear in an atom (RFC 5322 section 3.2.3).
func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
