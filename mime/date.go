package mime

import (
	"net/mail"
	"regexp"
	"strings"
	"time"
)

// DateSource says where a message's date of arrival was taken from.
type DateSource string

const (
	DateFromLine DateSource = "from-line" // an mbox From_ separator: the delivery time
	DateReceived DateSource = "received"  // the topmost Received: field, written on delivery
	DateHeader   DateSource = "date"      // the Date: field, written by the sender
	DateRunTime  DateSource = "run-time"  // nothing usable: the time of the run
)

// plausible rejects dates no real delivery has: before e-mail was common, or
// more than a day in the future of now.
func plausible(t, now time.Time) bool {
	return t.Year() >= 1980 && t.Before(now.Add(24*time.Hour))
}

// ArrivalDate picks the best date of arrival from a message's header: the
// topmost Received: field (the last hop, RFC 5321 section 4.4), else the Date:
// field, else now.
func ArrivalDate(h Header, now time.Time) (time.Time, DateSource) {
	for _, v := range h.Values("Received") {
		// The date follows the last semicolon (RFC 5322 section 3.6.7).
		i := strings.LastIndexByte(v, ';')
		if i < 0 {
			continue
		}
		if t, ok := ParseDate(v[i+1:]); ok && plausible(t, now) {
			return t, DateReceived
		}
		break // only the topmost one says when the mailbox got the message
	}
	if t, ok := ParseDate(h.Get("Date")); ok && plausible(t, now) {
		return t, DateHeader
	}
	return now, DateRunTime
}

var (
	comment = regexp.MustCompile(`\([^()]*\)`)
	spaces  = regexp.MustCompile(`\s+`)
)

// lenient lists layouts seen in real mail that net/mail refuses.
var lenient = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700 MST",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Monday, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:4:5 -0700",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02T15:04:05Z07:00",
}

// ParseDate parses an RFC 5322 date-time, and the common malformed variants
// real mail carries (comments, doubled spaces, missing seconds, asctime).
func ParseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	s = strings.TrimSpace(spaces.ReplaceAllString(comment.ReplaceAllString(s, " "), " "))
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	for _, layout := range lenient {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// MessageID returns the Message-ID of h without its angle brackets, or "".
func MessageID(h Header) string {
	v := h.Get("Message-ID")
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	return strings.TrimSpace(v)
}
