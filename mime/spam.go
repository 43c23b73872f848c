package mime

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Verdict is a message's spam classification.
type Verdict string

const (
	Spam    Verdict = "spam"
	Ham     Verdict = "ham"
	Unknown Verdict = "unknown"
)

// Basis says what kind of evidence decided a verdict, strongest first.
type Basis string

const (
	BasisFolder  Basis = "folder"  // the source folder is a junk folder
	BasisKeyword Basis = "keyword" // $Junk, $NotJunk and their legacy spellings
	BasisHeader  Basis = "header"  // a trusted verdict header of a known filter
	BasisNone    Basis = ""
)

// Evidence is one clue about a message's class.
type Evidence struct {
	Verdict Verdict `json:"verdict"`
	Basis   string  `json:"basis"`           // folder, keyword, header, untrusted-header, subject
	Detail  string  `json:"detail"`          // what was seen, for people
	Field   string  `json:"field,omitempty"` // the header field or keyword
	Acted   bool    `json:"acted"`           // whether it counts towards the verdict
}

// Classification is the verdict and everything seen on the way.
type Classification struct {
	Verdict  Verdict    `json:"verdict"`
	Basis    Basis      `json:"basis,omitempty"`
	Evidence []Evidence `json:"evidence,omitempty"`
}

// Reason is a short account of the deciding evidence, for reports.
func (c Classification) Reason() string {
	for _, e := range c.Evidence {
		if e.Acted && e.Verdict == c.Verdict {
			return string(c.Verdict) + ": " + e.Detail
		}
	}
	return string(c.Verdict)
}

// Explain is Reason followed by the evidence not acted on (forged headers,
// subject tags, weaker signals overruled), for the dry-run and the report.
func (c Classification) Explain() string {
	s := c.Reason()
	for _, e := range c.Evidence {
		if !e.Acted {
			s += "; not acted on: " + e.Detail
		}
	}
	return s
}

// Key names the verdict and the kind of evidence behind it, for counting:
// "spam (header X-me-spamlevel)", "ham (keyword $NotJunk)", "spam (folder)",
// "unknown".
func (c Classification) Key() string {
	if c.Basis == BasisNone {
		return string(c.Verdict)
	}
	for _, e := range c.Evidence {
		if e.Acted && e.Verdict == c.Verdict && e.Basis == string(c.Basis) {
			if e.Field != "" && c.Basis != BasisFolder {
				return fmt.Sprintf("%s (%s %s)", c.Verdict, c.Basis, e.Field)
			}
			break
		}
	}
	return fmt.Sprintf("%s (%s)", c.Verdict, c.Basis)
}

// SpamInput is what a message's classification looks at.
type SpamInput struct {
	Header     Header
	JunkFolder bool     // the source folder is a junk folder (an mbox Junk, a \Junk folder)
	Keywords   []string // flags the source carries
}

// Classify decides a message's verdict from, in order of strength: the
// source folder, its junk keywords (RFC 5788 registry: $Junk, $NotJunk; and
// Junk, NonJunk, NotJunk of older clients), and the verdict headers of known
// filters. A verdict header counts only when it stands above the Received:
// line where the receiving provider took the message in: below it, the
// sender wrote it and may have forged it. A subject tag is weak evidence: it
// is recorded but never decides alone. Classify is pure and never fails.
func Classify(in SpamInput) Classification {
	var c Classification
	var field string
	add := func(v Verdict, basis, detail string, acted bool) {
		c.Evidence = append(c.Evidence, Evidence{Verdict: v, Basis: basis, Detail: detail, Field: field, Acted: acted})
	}
	decide := func(v Verdict, b Basis) {
		if c.Basis == BasisNone {
			c.Verdict, c.Basis = v, b
		}
	}
	if in.JunkFolder {
		add(Spam, "folder", "in the source's junk folder", true)
		decide(Spam, BasisFolder)
	}
	for _, k := range in.Keywords {
		field = k
		switch strings.ToLower(k) {
		case "$junk", "junk":
			add(Spam, "keyword", "keyword "+k, c.Basis == BasisNone)
			decide(Spam, BasisKeyword)
		case "$notjunk", "notjunk", "nonjunk":
			add(Ham, "keyword", "keyword "+k, c.Basis == BasisNone)
			decide(Ham, BasisKeyword)
		}
	}
	boundary := TrustBoundary(in.Header)
	for i, f := range in.Header {
		v, detail, ok := filterVerdict(f)
		if !ok {
			continue
		}
		field = f.Name
		if i >= boundary {
			why := ", below the provider's inbound Received: line (maybe forged)"
			if !hasReceived(in.Header) {
				why = ", but the message has no Received: line to show who wrote it (a message saved locally, never delivered): not acted on"
			}
			add(v, "untrusted-header", detail+why, false)
			continue
		}
		add(v, "header", detail, c.Basis == BasisNone)
		decide(v, BasisHeader)
	}
	field = "Subject"
	if subj := strings.ToLower(in.Header.Get("Subject")); subjectTag.MatchString(subj) {
		add(Spam, "subject", fmt.Sprintf("subject tag in %q (weak: not acted on alone)", in.Header.Get("Subject")), false)
	}
	if c.Verdict == "" {
		c.Verdict = Unknown
	}
	return c
}

var subjectTag = regexp.MustCompile(`^\s*(\*+\s*)?[\[(]\s*(spam|\*\*\*spam\*\*\*|suspected spam|pourriel|ind[ée]sirable)\s*[\])]|^\s*\*+\s*spam\s*\*+`)

// filterVerdict reads one header field as a known filter's verdict.
// Values not seen in public samples count as "not the known ham value" and
// say so (../MAIL.md: Orange's and SFR's spam values are unknown).
func filterVerdict(f Field) (Verdict, string, bool) {
	name := strings.ToLower(f.Name)
	v := strings.TrimSpace(f.Value)
	lv := strings.ToLower(v)
	show := func(family string) string {
		s := v
		if len(s) > 60 {
			s = s[:60] + "..."
		}
		return fmt.Sprintf("%s: %s (%s)", f.Name, s, family)
	}
	yesNo := func(family string) (Verdict, string, bool) {
		switch {
		case strings.HasPrefix(lv, "yes"):
			return Spam, show(family), true
		case strings.HasPrefix(lv, "no"):
			return Ham, show(family), true
		}
		return "", "", false
	}
	notHam := func(family, ham string) (Verdict, string, bool) {
		if lv == "" {
			return "", "", false
		}
		if strings.HasPrefix(lv, ham) {
			return Ham, show(family), true
		}
		return Spam, show(family) + "; not the known ham value " + strconv.Quote(ham) + ", read as spam", true
	}
	switch name {
	case "x-spam-flag":
		return yesNo("SpamAssassin")
	case "x-spam-status":
		return yesNo("SpamAssassin/rspamd")
	case "x-spam":
		return yesNo("rspamd")
	case "x-me-spamlevel":
		return notHam("Orange/Wanadoo/La Poste", "not-spam")
	case "x-sfr-spam":
		return notHam("SFR", "not-spam")
	case "x-vr-spamstate", "x-ovh-spamstate":
		return notHam("OVH/Vade", "ok")
	case "x-vade-spamstate":
		if strings.HasPrefix(lv, "spam") {
			return Spam, show("Vade"), true
		}
		return notHam("Vade", "clean")
	case "x-proxad-sc":
		switch {
		case strings.Contains(lv, "state=spam"):
			return Spam, show("Free"), true
		case strings.Contains(lv, "state=ham"):
			return Ham, show("Free"), true
		}
		return notHam("Free", "state=ham")
	case "x-ms-exchange-organization-scl":
		n, err := strconv.Atoi(lv)
		if err != nil {
			return "", "", false
		}
		if n >= 5 {
			return Spam, show("Microsoft"), true
		}
		return Ham, show("Microsoft"), true
	case "x-forefront-antispam-report":
		for _, part := range strings.Split(strings.ToUpper(v), ";") {
			switch strings.TrimSpace(part) {
			case "SFV:SPM", "SFV:SKS", "SFV:BLK":
				return Spam, show("Microsoft"), true
			case "SFV:NSPM", "SFV:SKN", "SFV:SKI", "SFV:SKA":
				return Ham, show("Microsoft"), true
			}
		}
	case "x-ui-out-filterresults", "x-ui-filterresults":
		switch {
		case strings.HasPrefix(lv, "junk"):
			return Spam, show("United Internet"), true
		case strings.HasPrefix(lv, "notjunk"):
			return Ham, show("United Internet"), true
		}
	case "x-bitdefender-spam":
		return yesNo("Bitdefender")
	case "x-klms-antispam-status", "x-ksmg-antispam-status":
		switch {
		case strings.HasPrefix(lv, "not spam"), strings.HasPrefix(lv, "clean"):
			return Ham, show("Kaspersky"), true
		case strings.HasPrefix(lv, "spam"), strings.HasPrefix(lv, "probable spam"):
			return Spam, show("Kaspersky"), true
		}
	}
	return "", "", false
}

// TrustBoundary returns the index in h of the Received: field written where
// the receiving provider took the message in from outside. Walking down from
// the topmost Received: field, a field belongs to the provider while its
// receiving host ("by") is in the provider's domain or is internal (no
// domain, a private address); the provider's domain is that of the first
// named receiving host. The walk stops at the first field whose sending host
// ("from", its reverse-DNS name when given) is outside: that field is the
// boundary. Fields above it were added by the provider; fields below it
// travelled with the message and may be forged. With no Received: field
// nothing is trusted (the result is 0).
func TrustBoundary(h Header) int {
	boundary, domain, seen := 0, "", false
	for i, f := range h {
		if !strings.EqualFold(f.Name, "Received") {
			continue
		}
		from, ip, by := receivedHosts(f.Value)
		d := providerDomain(by)
		if seen && d != "" && domain != "" && d != domain {
			return boundary // written by someone else
		}
		boundary, seen = i, true
		if domain == "" {
			domain = d
		}
		fd := providerDomain(from)
		if fd != "" && fd != domain || fd == "" && ip.IsValid() && !ip.IsPrivate() && !ip.IsLoopback() {
			return boundary // the provider received it from outside here
		}
	}
	return boundary
}

// receivedHosts extracts from a Received: value (RFC 5321 section 4.4) the
// sending host (its reverse-DNS name in parentheses when given, else the
// name it announced), its address, and the receiving host.
func receivedHosts(v string) (from string, ip netip.Addr, by string) {
	fields := strings.Fields(v)
	inFrom := false
	for i := 0; i < len(fields); i++ {
		w := fields[i]
		switch {
		case strings.EqualFold(w, "by") && i+1 < len(fields):
			return from, ip, strings.Trim(fields[i+1], "();[]")
		case strings.EqualFold(w, "from") && i == 0:
			inFrom = true
			if i+1 < len(fields) {
				from = strings.Trim(fields[i+1], "()[]")
				i++
			}
		case inFrom && strings.HasPrefix(w, "(") && !strings.HasPrefix(w, "(["):
			if name := strings.Trim(w, "()"); strings.Contains(name, ".") && !strings.HasPrefix(name, "[") {
				if _, err := netip.ParseAddr(name); err != nil {
					from = name // the reverse-DNS name outranks the announced one
				}
			}
		}
		if inFrom && !ip.IsValid() {
			if j := strings.IndexByte(w, '['); j >= 0 {
				if k := strings.IndexByte(w[j:], ']'); k > 0 {
					ip, _ = netip.ParseAddr(strings.TrimPrefix(w[j+1:j+k], "IPv6:"))
				}
			}
		}
	}
	if a, err := netip.ParseAddr(from); err == nil && !ip.IsValid() {
		ip = a
	}
	return from, ip, by
}

// providerDomain reduces a host name to its last two labels; an internal
// name (no dot), a private or loopback address, or none gives "".
func providerDomain(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.IsPrivate() || addr.IsLoopback() {
			return ""
		}
		return host
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return ""
	}
	return strings.Join(labels[len(labels)-2:], ".")
}

func hasReceived(h Header) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, "Received") {
			return true
		}
	}
	return false
}
