package mime

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"
)

// xmlResult is an XML-wrapped message undone.
type xmlResult struct {
	msg     []byte
	finding Finding
	review  bool
}

// unwrapXML recognises a message whose body, where the mail should be, is an
// XML document: Orange's POP3 service has delivered such messages since
// August 2025, with an "x-me-engine" header. No sample or description of the
// format is public, so nothing here depends on element names: every text
// node, CDATA section and attribute value is tried as a mail, raw, entity-
// escaped or base64-encoded, and the best candidate wins. Without one, a
// readable message is built from what the XML says, with the XML attached.
//
// Real XML mail is left alone: a multipart message (a DMARC report, an
// e-invoice, a plist after the text) is never a candidate, nor is a body
// declared text/xml or application/xml without the x-me-engine header, nor
// plain text that is XML but holds no mail.
func unwrapXML(m []byte, date time.Time) (xmlResult, bool) {
	header, body := splitMessage(m)
	h := ParseHeader(header)
	engine := ""
	hasEngine := false
	for _, f := range h {
		if strings.EqualFold(f.Name, "x-me-engine") {
			engine, hasEngine = strings.TrimSpace(f.Value), true
		}
	}
	t, _ := contentType(h)
	declaredXML := t == "text/xml" || t == "application/xml" || strings.HasSuffix(t, "+xml")
	if strings.HasPrefix(t, "multipart/") || !hasEngine && t != "text/plain" && !declaredXML {
		return xmlResult{}, false
	}
	doc := decodeCTE(h.Get("Content-Transfer-Encoding"), body)
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(bytes.TrimLeft(doc, " \t\r\n"), []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(trimmed) < 2 || trimmed[0] != '<' || !(trimmed[1] == '?' || trimmed[1] == '!' || isNameStart(trimmed[1])) {
		return xmlResult{}, false
	}
	texts, fields, parsed := xmlTexts(trimmed)
	if !parsed {
		return xmlResult{}, false // not XML after all
	}
	what := "the message arrived as an XML document"
	if hasEngine {
		what = fmt.Sprintf("the message arrived as an XML document (x-me-engine: %s)", clipValue(engine))
	}
	if inner, how, ok := bestMail(texts); ok && (hasEngine || !declaredXML) {
		return xmlResult{msg: toCRLF(inner), finding: Finding{
			Code: "xml-unwrapped", Text: what + "; the mail inside it was recovered",
			Change: fmt.Sprintf("the %d-byte XML wrapper was replaced by the %d-byte message found in %s", len(body), len(inner), how),
		}}, true
	}
	if !hasEngine {
		return xmlResult{}, false
	}
	return xmlResult{msg: readable(h, doc, fields, date), review: true, finding: Finding{
		Code: "xml-readable", Text: what + " with no mail inside",
		Change: "replaced by a readable message built from the XML (sender, subject, date, text), the XML attached whole; filed for review",
	}}, true
}

func isNameStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

func clipValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func decodeCTE(cte string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		if d, err := base64.StdEncoding.DecodeString(string(bytes.Map(dropSpace, body))); err == nil {
			return d
		}
	case "quoted-printable":
		return decodeQP(body)
	}
	return body
}

// decodePrefix decodes the start of a body: base64 is cut to whole 4-byte
// groups first, since a prefix rarely ends on one.
func decodePrefix(cte string, prefix []byte) []byte {
	if strings.EqualFold(strings.TrimSpace(cte), "base64") {
		compact := bytes.Map(dropSpace, prefix)
		return decodeCTE(cte, compact[:len(compact)/4*4])
	}
	return decodeCTE(cte, prefix)
}

// xmlText is a text node or attribute value, with where it was found.
type xmlText struct {
	path  string // element path, for the finding
	text  string
	cdata bool // a CDATA section: literal text, never unescaped (XML 1.0 section 2.7)
}

// xmlTexts collects every text node (CDATA included) and attribute value of
// doc, and the text of elements by their lower-cased local name. parsed is
// false when doc is not XML at all.
func xmlTexts(doc []byte) (texts []xmlText, fields map[string]string, parsed bool) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = false
	d.CharsetReader = charset.Reader
	fields = map[string]string{}
	var stack []string
	var cur strings.Builder
	cdata := false // cur holds a CDATA section
	flush := func() {
		if s := cur.String(); strings.TrimSpace(s) != "" && len(stack) > 0 {
			texts = append(texts, xmlText{path: "<" + strings.Join(stack, "/") + ">", text: s, cdata: cdata})
			name := strings.ToLower(stack[len(stack)-1])
			if len(s) > len(fields[name]) {
				fields[name] = s
			}
		}
		cur.Reset()
		cdata = false
	}
	elements := 0
	for i := 0; i < 1_000_000; i++ {
		last := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			if err != io.EOF && elements == 0 {
				return nil, nil, false
			}
			if err != io.EOF {
				// A truncated document: what follows the last good token
				// (an unterminated CDATA section, text) is a candidate too.
				tail := doc[min(int(last), len(doc)):]
				if i := bytes.Index(tail, []byte("<![CDATA[")); i >= 0 {
					tail = tail[i+9:]
				} else if i := bytes.IndexByte(tail, '>'); i >= 0 {
					tail = tail[i+1:]
				}
				texts = append(texts, xmlText{path: "the unterminated end of the document", text: string(tail)})
			}
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			flush()
			elements++
			stack = append(stack, tok.Name.Local)
			for _, a := range tok.Attr {
				texts = append(texts, xmlText{path: "<" + strings.Join(stack, "/") + " " + a.Name.Local + "=...>", text: a.Value})
				if name := strings.ToLower(a.Name.Local); len(a.Value) > len(fields[name]) {
					fields[name] = a.Value
				}
			}
		case xml.EndElement:
			flush()
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			// encoding/xml returns a CDATA section as CharData, like text:
			// the input tells them apart.
			if bytes.HasPrefix(doc[min(int(last), len(doc)):], []byte("<![CDATA[")) {
				cdata = true
			}
			cur.Write(tok)
		}
	}
	flush()
	return texts, fields, elements > 0
}

// bestMail tries every text as a mail, as is, unescaped once more, and
// base64-decoded, and returns the best: a header and a body first, then the
// most header fields, then the longest.
func bestMail(texts []xmlText) ([]byte, string, bool) {
	var best []byte
	var bestHow string
	bestScore := 0
	try := func(b []byte, how string) {
		b = bytes.TrimLeft(b, " \t\r\n")
		if s := mailScore(b); s > bestScore {
			best, bestHow, bestScore = b, how, s
		}
	}
	for _, t := range texts {
		try([]byte(t.text), t.path)
		if strings.Contains(t.text, "&") && !t.cdata {
			try([]byte(html.UnescapeString(t.text)), t.path+", entity-escaped twice")
		}
		compact := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, t.text)
		if len(compact) >= 16 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding} {
				if d, err := enc.DecodeString(compact); err == nil {
					try(d, t.path+", base64")
					break
				}
			}
		}
	}
	return best, bestHow, bestScore > 0
}

// mailScore says how much b looks like an RFC 5322 message; 0 when not.
func mailScore(b []byte) int {
	m := toCRLF(b)
	hs := scanHeader(m)
	if hs.headerless {
		return 0
	}
	end := len(m)
	if hs.insertAt >= 0 {
		end = hs.insertAt
	}
	h := ParseHeader(m[:end])
	if len(h) < 2 {
		return 0
	}
	known := 0
	for _, f := range h {
		switch strings.ToLower(f.Name) {
		case "from", "date", "subject", "message-id", "received", "return-path", "to", "mime-version", "content-type":
			known++
		}
	}
	if known < 2 {
		return 0
	}
	score := 10*known + min(len(m)/1024, 100)
	head := m[:min(end, HeaderEnd(m))] // the body may hold entities of its own (HTML)
	if bytes.Contains(head, []byte("&lt;")) || bytes.Contains(head, []byte("&gt;")) || bytes.Contains(head, []byte("&amp;")) {
		score -= 5 // still entity-escaped: the unescaped candidate is better
	}
	if hs.insertAt < 0 || hs.insertAt == len(m) {
		score += 1000 // the header ends properly
	}
	return score
}

var (
	senderNames  = []string{"from", "sender", "expediteur", "expéditeur", "emetteur", "author", "originator", "mailfrom"}
	subjectNames = []string{"subject", "objet", "sujet", "title", "titre"}
	dateNames    = []string{"date", "sent", "senddate", "datetime", "timestamp", "received", "dateenvoi"}
	textNames    = []string{"body", "text", "content", "message", "corps", "contenu", "plain", "texte", "msg"}
)

func firstField(fields map[string]string, names []string) string {
	for _, n := range names {
		if v := strings.TrimSpace(fields[n]); v != "" {
			return v
		}
	}
	return ""
}

// readable builds a message a person can read from an XML record that holds
// no mail: sender, subject, date and text as the XML gives them (else the
// outer header's), with the XML attached whole.
func readable(outer Header, doc []byte, fields map[string]string, date time.Time) []byte {
	oneLine := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	from := oneLine(firstField(fields, senderNames))
	if from == "" {
		from = oneLine(outer.Get("From"))
	}
	if from == "" {
		from = "unknown sender <unknown@localhost.invalid>"
	}
	subject := oneLine(firstField(fields, subjectNames))
	if subject == "" {
		subject = oneLine(outer.Get("Subject"))
	}
	if subject == "" {
		subject = "(message received as XML)"
	}
	when := outer.Get("Date")
	if t, ok := ParseDate(firstField(fields, dateNames)); ok {
		when = t.Format(time.RFC1123Z)
	}
	if when == "" {
		when = date.UTC().Format(time.RFC1123Z)
	}
	text := firstField(fields, textNames)
	if text == "" {
		for _, v := range fields {
			if len(v) > len(text) {
				text = v
			}
		}
	}
	sum := sha256.Sum256(doc)
	id := hex.EncodeToString(sum[:12])
	mid := outer.Get("Message-ID")
	if mid == "" {
		mid = "<" + id + "@mailmove.invalid>"
	}
	boundary := "mailmove-" + id
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", encodeWords(from))
	if to := outer.Get("To"); to != "" {
		fmt.Fprintf(&b, "To: %s\r\n", oneLine(to))
	}
	fmt.Fprintf(&b, "Subject: %s\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n", encodeWords(subject), when, mid)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary)
	note := "This message reached your old mailbox as an XML document instead of an e-mail.\n" +
		"mailmove found no e-mail inside it, so it wrote out below what the XML says,\n" +
		"and attached the XML itself, whole, as original.xml.\n\n" + text + "\n"
	b.Write(base64Lines([]byte(note)))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/xml; name=\"original.xml\"\r\nContent-Disposition: attachment; filename=\"original.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary)
	b.Write(base64Lines(doc))
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}
