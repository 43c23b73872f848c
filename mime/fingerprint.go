package mime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// Fingerprint identifies a message's content independently of where it is
// stored: it ignores line-ending style (CRLF, LF or CR), trailing line breaks,
// and the bookkeeping header fields that mail clients and sync tools add to
// record their own state (see Bookkeeping).
type Fingerprint [sha256.Size]byte

// String returns the fingerprint in lower-case hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// IsZero reports whether f is the zero value (no fingerprint computed).
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// bookkeeping lists, lower-cased, the header fields that describe a mail
// client's or a mail store's state rather than the message itself.
var bookkeeping = map[string]bool{
	"status":            true, // mutt, pine: R/O
	"x-status":          true, // mutt, pine: A/F/T/D
	"x-keywords":        true, // mutt, Dovecot mbox
	"x-mozilla-status":  true, // Thunderbird flag bits
	"x-mozilla-status2": true,
	"x-mozilla-keys":    true, // Thunderbird tags
	"x-uidl":            true, // POP3 clients remember the UIDL here
	"x-account-key":     true, // Thunderbird: the account that fetched it
	"x-uid":             true, // Dovecot and UW mbox
	"x-imap":            true, // UW IMAP's first-message bookkeeping
	"x-imapbase":        true,
	"x-tuid":            true, // mbsync marks every message it copies
	"content-length":    true, // mboxcl and mboxcl2 add it on save
	"lines":             true, // mboxcl2
}

// Bookkeeping reports whether the header field name (any case) records a mail
// client's state rather than the message's content.
func Bookkeeping(name string) bool {
	if len(name) > 20 {
		return false
	}
	var b [20]byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return bookkeeping[string(b[:len(name)])]
}

// Fingerprinter computes a Fingerprint from a message streamed through Write
// in chunks of any size. The zero value is not usable: call NewFingerprinter.
type Fingerprinter struct {
	h hash.Hash

	inBody    bool
	lineStart bool
	crs       int    // CRs not yet taken as breaks: a LF may follow
	breaks    int    // line breaks not yet hashed (dropped if they end the message)
	naming    bool   // collecting a header field name at the start of a line
	name      []byte // the field name collected so far
	skipField bool   // the current header field (with its continuations) is bookkeeping
	buf       []byte // gathered for hashing: one hash write per few KB, not two per line
}

// NewFingerprinter returns a Fingerprinter ready for the first byte of a
// message. Line breaks are read as CRLFWriter writes them: CR CR LF is one.
func NewFingerprinter() *Fingerprinter {
	return &Fingerprinter{h: sha256.New(), lineStart: true, name: make([]byte, 0, 32), buf: make([]byte, 0, 8<<10)}
}

// FingerprintBytes returns the fingerprint of b.
func FingerprintBytes(b []byte) Fingerprint {
	f := NewFingerprinter()
	f.Write(b)
	return f.Sum()
}

// Sum returns the fingerprint of everything written so far.
func (f *Fingerprinter) Sum() Fingerprint {
	f.flushCRs()
	if f.naming {
		// A last header line with no colon and no line break: hash what it held.
		f.emit(f.name)
	}
	f.h.Write(f.buf)
	f.buf = f.buf[:0]
	var out Fingerprint
	copy(out[:], f.h.Sum(nil))
	return out
}

func (f *Fingerprinter) emit(b []byte) {
	if len(b) == 0 {
		return
	}
	for ; f.breaks > 0; f.breaks-- {
		f.buf = append(f.buf, '\n')
	}
	if len(f.buf)+len(b) > cap(f.buf) {
		f.h.Write(f.buf)
		f.buf = f.buf[:0]
		if len(b) >= cap(f.buf) {
			f.h.Write(b)
			return
		}
	}
	f.buf = append(f.buf, b...)
}

// lineBreak records one line break.
func (f *Fingerprinter) lineBreak() {
	if !f.skipField || f.inBody {
		f.breaks++
	}
	f.lineStart = true
}

var lf = []byte{'\n'}

// flushCRs takes the pending CRs, which no LF followed, as a break each.
func (f *Fingerprinter) flushCRs() {
	n := f.crs
	f.crs = 0
	for range n {
		f.lines(lf)
	}
}

// Write never fails. CRs are held back until the byte after them shows
// whether they end a line with a LF or on their own; everything else goes
// to lines, which sees LF as the only line break.
func (f *Fingerprinter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if f.crs > 0 {
			switch {
			case p[0] == '\r':
				f.crs++
				p = p[1:]
				continue
			case p[0] == '\n':
				f.crs = 0 // the LF that follows is the one break
			default:
				f.flushCRs()
			}
		}
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			f.lines(p)
			break
		}
		f.lines(p[:i])
		f.crs = 1
		p = p[i+1:]
	}
	return n, nil
}

// lines consumes bytes in which LF is the only line break.
func (f *Fingerprinter) lines(p []byte) {
	for len(p) > 0 {
		if f.inBody {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.emit(p)
				return
			}
			f.emit(p[:i])
			f.lineBreak()
			p = p[i+1:]
			continue
		}
		p = f.header(p)
	}
}

// header consumes header bytes up to and including the next line break and
// returns the rest.
func (f *Fingerprinter) header(p []byte) []byte {
	if f.lineStart {
		f.lineStart = false
		switch p[0] {
		case '\n':
			// The empty line that separates the header from the body.
			f.skipField = false
			f.inBody = true
			f.lineBreak()
			return p[1:]
		case ' ', '\t':
			// A continuation line keeps the decision taken for its field.
		default:
			f.naming = true
			f.name = f.name[:0]
			f.skipField = false
		}
	}
	if f.naming {
		for i, c := range p {
			switch {
			case c == ':':
				f.naming = false
				f.skipField = Bookkeeping(string(f.name))
				if !f.skipField {
					f.emit(f.name)
				}
				return f.headerRest(p[i:])
			case c == '\n' || len(f.name) >= 64:
				// Not a field name: hash it as it stands.
				f.naming = false
				f.emit(f.name)
				return f.headerRest(p[i:])
			}
			f.name = append(f.name, c)
		}
		return nil
	}
	return f.headerRest(p)
}

func (f *Fingerprinter) headerRest(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		if !f.skipField {
			f.emit(p)
		}
		return nil
	}
	if !f.skipField {
		f.emit(p[:i])
	}
	f.lineBreak()
	return p[i+1:]
}
