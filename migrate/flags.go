package migrate

import (
	"slices"
	"strings"
)

// systemFlags are the flags RFC 3501 section 2.3.2 defines and a client may
// set. `\Recent` is absent on purpose: only a server sets it, and Dovecot
// answers BAD to an APPEND carrying it.
var systemFlags = map[string]string{
	`\seen`:     `\Seen`,
	`\answered`: `\Answered`,
	`\flagged`:  `\Flagged`,
	`\deleted`:  `\Deleted`,
	`\draft`:    `\Draft`,
}

// validKeyword reports whether s is an IMAP atom usable as a keyword
// (RFC 3501 section 9: flag-keyword = atom; no atom-specials).
func validKeyword(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// SanitizeFlags returns the flags that may be sent in an APPEND to a folder
// with the given PERMANENTFLAGS, canonical and without repeats, and those it
// dropped. A malformed flag would make go-imap close the connection, and a
// flag the folder cannot keep would be silently lost, so both are dropped
// here, where the caller can report them.
func SanitizeFlags(flags, permanent []string) (kept, dropped []string) {
	anyKeyword := slices.Contains(permanent, `\*`)
	allows := func(f string) bool {
		if permanent == nil {
			// No PERMANENTFLAGS: RFC 3501 section 7.1 lets us assume the
			// system flags are kept; keywords are not guaranteed.
			return strings.HasPrefix(f, `\`)
		}
		// `\*` lets a client create keywords; a server offering that keeps
		// system flags too, even when it forgets to list them (go-imap's
		// in-memory server does).
		return anyKeyword || slices.ContainsFunc(permanent, func(p string) bool {
			return strings.EqualFold(p, f)
		})
	}
	for _, f := range flags {
		canon := f
		if strings.HasPrefix(f, `\`) {
			canon = systemFlags[strings.ToLower(f)]
		} else if !validKeyword(f) {
			canon = ""
		}
		if canon == "" || !allows(canon) {
			dropped = append(dropped, f)
			continue
		}
		if !slices.ContainsFunc(kept, func(k string) bool { return strings.EqualFold(k, canon) }) {
			kept = append(kept, canon)
		}
	}
	return kept, dropped
}
