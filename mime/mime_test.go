package mime

import (
	"bytes"
	"io"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestFingerprintEquivalences(t *testing.T) {
	base := "From: a@b\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nline 1\r\nline 2\r\n"
	same := map[string]string{
		"LF endings":          strings.ReplaceAll(base, "\r\n", "\n"),
		"CR endings":          strings.ReplaceAll(base, "\r\n", "\r"),
		"CR CR LF endings":    strings.ReplaceAll(base, "\r\n", "\r\r\n"),
		"no final newline":    strings.TrimSuffix(base, "\r\n"),
		"extra final newline": base + "\r\n",
		"mutt Status":         "Status: RO\r\nX-Status: A\r\n" + base,
		"Thunderbird":         "From: a@b\r\nX-Mozilla-Status: 0001\r\nX-Mozilla-Status2: 00000000\r\nX-Mozilla-Keys: $label1                \r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nline 1\r\nline 2\r\n",
		"folded bookkeeping":  "X-Keywords: a\r\n b\r\n\tc\r\n" + base,
		"X-UIDL any case":     "x-uidl: 123\r\n" + base,
		"mbsync X-TUID":       "From: a@b\r\nSubject: hi\r\nX-TUID: abcdef\r\nMessage-ID: <1@x>\r\n\r\nline 1\r\nline 2\r\n",
	}
	want := FingerprintBytes([]byte(base))
	for name, v := range same {
		if got := FingerprintBytes([]byte(v)); got != want {
			t.Errorf("%s: fingerprint differs", name)
		}
	}
	differ := map[string]string{
		"body changed":         strings.Replace(base, "line 2", "line 3", 1),
		"header changed":       strings.Replace(base, "hi", "ho", 1),
		"Status in body":       base + "Status: RO\r\n",
		"blank line moved":     "From: a@b\r\n\r\nSubject: hi\r\nMessage-ID: <1@x>\r\nline 1\r\nline 2\r\n",
		"line joined":          strings.Replace(base, "line 1\r\nline 2", "line 1line 2", 1),
		"X-Status-like header": "X-Statusx: 1\r\n" + base,
	}
	for name, v := range differ {
		if FingerprintBytes([]byte(v)) == want {
			t.Errorf("%s: fingerprint should differ", name)
		}
	}
}

// FuzzFingerprint: no panic, and the same bytes in any chunking give the
// same fingerprint, as the pipeline streams in chunks of any size.
func FuzzFingerprint(f *testing.F) {
	f.Add([]byte("Status: RO\r\nA: b\r\n c\r\n\r\nbody\r\n"), 3)
	f.Add([]byte("\r\n\r\n\r"), 1)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		want := FingerprintBytes(data)
		if chunk <= 0 {
			chunk = 1
		}
		fp := NewFingerprinter()
		for p := data; len(p) > 0; {
			n := min(chunk%64+1, len(p))
			fp.Write(p[:n])
			p = p[n:]
		}
		if fp.Sum() != want {
			t.Fatal("fingerprint depends on chunking")
		}
		var crlf bytes.Buffer
		w := &CRLFWriter{W: &crlf}
		w.Write(data)
		w.Close()
		if !bytes.Contains(data, []byte{'\r'}) && FingerprintBytes(crlf.Bytes()) != want {
			t.Fatal("CRLF normalisation changed the fingerprint")
		}
	})
}

// referenceHeader is ParseHeader written again, the tests' own way: the
// data cut into lines at each LF with the CRs before it, or a lone CR
// (regexp), then RFC 5322's fields and continuations, stopping at an empty
// line or a line that is neither.
func referenceHeader(data []byte) Header {
	var h Header
	for _, line := range regexp.MustCompile(`\r*\n|\r`).Split(string(data), -1) {
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h) > 0 {
				h[len(h)-1].Value += line
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimRight(name, " \t")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			break
		}
		h = append(h, Field{Name: name, Value: value})
	}
	return h
}

// FuzzParseHeader: ParseHeader reads what the reference reads, HeaderEnd
// ends where the header does (what follows it changes nothing), and the
// helpers never fail.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("A: b\r\n c\r\nD:e\r\n\r\nbody"))
	f.Add([]byte(":\r\n \r\n"))
	f.Add([]byte("A: b\r\r\nB : c\rC: d\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := ParseHeader(data)
		if want := referenceHeader(data); !slices.Equal(h, want) {
			t.Fatalf("ParseHeader %q, the reference %q", h, want)
		}
		end := HeaderEnd(data)
		if end < 0 || end > len(data) {
			t.Fatalf("HeaderEnd %d out of range", end)
		}
		if got := ParseHeader(data[:end]); !slices.Equal(got, h) {
			t.Fatalf("the header alone reads %q, with its body %q", got, h)
		}
		if end < len(data) {
			// An empty line ended it: another body changes nothing.
			if got := ParseHeader(append(data[:end:end], "X-After: the header\r\n"...)); !slices.Equal(got, h) {
				t.Fatalf("another body changed the header: %q, was %q", got, h)
			}
		}
		MessageID(h)
		ArrivalDate(h, time.Now())
	})
}

func TestParseHeader(t *testing.T) {
	h := ParseHeader([]byte("Subject: a\r\n  folded\r\nmessage-id:  <x@y> \r\nReceived: one\r\nReceived: two\r\n\r\nBody: not a header\r\n"))
	if got := h.Get("SUBJECT"); got != "a  folded" {
		t.Errorf("Subject %q", got)
	}
	if got := MessageID(h); got != "x@y" {
		t.Errorf("Message-ID %q", got)
	}
	if got := h.Values("received"); len(got) != 2 || got[0] != "one" {
		t.Errorf("Received %q", got)
	}
	if h.Get("Body") != "" {
		t.Error("a body line was read as a header field")
	}
	if n := HeaderEnd([]byte("A: b\nC: d\n\nbody")); n != 11 {
		t.Errorf("HeaderEnd %d, want 11", n)
	}
}

func TestArrivalDate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name, header string
		want         string
		src          DateSource
	}{
		{"topmost Received", "Received: from a by b; Tue, 19 Aug 2025 09:12:44 +0200\r\nReceived: from c by d; Mon, 18 Aug 2025 01:00:00 +0000\r\nDate: Sun, 17 Aug 2025 00:00:00 +0000\r\n", "2025-08-19T07:12:44Z", DateReceived},
		{"Received with comment", "Received: by x; Tue, 19 Aug 2025 09:12:44 +0200 (CEST)\r\n", "2025-08-19T07:12:44Z", DateReceived},
		{"Received without date falls to Date", "Received: by x\r\nDate: Sun, 17 Aug 2025 10:00:00 +0000\r\n", "2025-08-17T10:00:00Z", DateHeader},
		{"broken Received date falls to Date", "Received: by x; yesterday\r\nDate: 17 Aug 2025 10:00:00 GMT\r\n", "2025-08-17T10:00:00Z", DateHeader},
		{"future date refused", "Date: Sun, 17 Aug 2031 10:00:00 +0000\r\n", "2026-01-01T00:00:00Z", DateRunTime},
		{"asctime Date", "Date: Thu Aug 22 13:17:22 2002\r\n", "2002-08-22T13:17:22Z", DateHeader},
		{"nothing", "Subject: x\r\n", "2026-01-01T00:00:00Z", DateRunTime},
	}
	for _, c := range cases {
		got, src := ArrivalDate(ParseHeader([]byte(c.header+"\r\n")), now)
		if got.UTC().Format(time.RFC3339) != c.want || src != c.src {
			t.Errorf("%s: got %v (%s), want %s (%s)", c.name, got.UTC().Format(time.RFC3339), src, c.want, c.src)
		}
	}
}

func TestCRLFWriter(t *testing.T) {
	cases := map[string]string{
		"a\r\nb\r\n": "a\r\nb\r\n",
		"a\nb\n":     "a\r\nb\r\n",
		"a\rb":       "a\r\nb\r\n",
		"a\r":        "a\r\n",
		"a":          "a\r\n",
		"":           "",
		"a\r\r\nb":   "a\r\nb\r\n",
		"a\r\r\r\n":  "a\r\n",
		"a\r\rb":     "a\r\n\r\nb\r\n",
		"a\r\r":      "a\r\n\r\n",
		"\r\r\n\n":   "\r\n\r\n",
	}
	for in, want := range cases {
		for chunk := 1; chunk <= 3; chunk++ {
			var out bytes.Buffer
			w := &CRLFWriter{W: &out}
			for p := []byte(in); len(p) > 0; {
				n := min(chunk, len(p))
				w.Write(p[:n])
				p = p[n:]
			}
			w.Close()
			if out.String() != want || w.N != int64(len(want)) {
				t.Errorf("%q in chunks of %d: got %q (N=%d), want %q", in, chunk, out.String(), w.N, want)
			}
			if want != "" && !IsCRLF(out.Bytes()) {
				t.Errorf("%q: output not CRLF", in)
			}
		}
	}
}

func TestRemoveFields(t *testing.T) {
	drop := func(name string) bool { return Bookkeeping(name) }
	for _, tc := range []struct{ in, want, removed string }{
		{"Subject: a\r\n\r\n", "Subject: a\r\n\r\n", ""},
		{"X-Mozilla-Status: 0001\nSubject: a\nstatus: RO\n\n", "Subject: a\n\n", "X-Mozilla-Status,status"},
		{"X-Keywords: a,\n b\nSubject: x\n\tfolded\n\n", "Subject: x\n\tfolded\n\n", "X-Keywords"},
		{"Subject: x\nnot a field\nX-UID: 3\n", "Subject: x\nnot a field\n", "X-UID"},
		{"X-Status: A", "", "X-Status"},
		{"", "", ""},
	} {
		got, removed := RemoveFields([]byte(tc.in), drop)
		if string(got) != tc.want || strings.Join(removed, ",") != tc.removed {
			t.Errorf("%q: got %q %v, want %q %q", tc.in, got, removed, tc.want, tc.removed)
		}
	}
}

// FuzzRemoveFields: never panics, never adds a byte, is idempotent, and what
// it removes is gone.
func FuzzRemoveFields(f *testing.F) {
	f.Add([]byte("X-Mozilla-Status: 0001\r\nSubject: a\r\n folded\r\nStatus: RO\r\n\r\n"))
	f.Add([]byte("X-Keywords: a\n b\n\tc\nx\n"))
	f.Fuzz(func(t *testing.T, h []byte) {
		out, removed := RemoveFields(h, Bookkeeping)
		if len(out) > len(h) || (len(removed) == 0) != bytes.Equal(out, h) {
			t.Fatalf("%q -> %q, removed %v", h, out, removed)
		}
		again, more := RemoveFields(out, Bookkeeping)
		if !bytes.Equal(again, out) || len(more) != 0 {
			t.Fatalf("not idempotent: %q -> %q -> %q", h, out, again)
		}
	})
}

// TestCRLFWriterAgainstSimple: on random mixes of CR, LF and text, cut in
// random chunks, the writer does what a byte-at-a-time rewrite does.
func TestCRLFWriterAgainstSimple(t *testing.T) {
	simple := func(in []byte) []byte {
		var out []byte
		for i := 0; i < len(in); i++ {
			switch {
			case in[i] == '\r':
				// The CRs of a run before a LF make one break with it;
				// with no LF after them, each is a break.
				j := i
				for j < len(in) && in[j] == '\r' {
					j++
				}
				if j < len(in) && in[j] == '\n' {
					out = append(out, '\r', '\n')
					i = j
				} else {
					out = append(out, '\r', '\n')
				}
			case in[i] == '\n':
				out = append(out, '\r', '\n')
			default:
				out = append(out, in[i])
			}
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\r', '\n')
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		in := make([]byte, rng.IntN(40))
		for i := range in {
			in[i] = "ab\r\n"[rng.IntN(4)]
		}
		var out bytes.Buffer
		w := &CRLFWriter{W: &out}
		for p := in; len(p) > 0; {
			n := min(1+rng.IntN(7), len(p))
			w.Write(p[:n])
			p = p[n:]
		}
		w.Close()
		if want := simple(in); !bytes.Equal(out.Bytes(), want) || w.N != int64(len(want)) {
			t.Fatalf("%q: got %q, want %q", in, out.Bytes(), want)
		}
		if i, j := IndexEOL(in), bytes.IndexAny(in, "\r\n"); i != j {
			t.Fatalf("IndexEOL(%q) = %d, want %d", in, i, j)
		}
	}
}

// TestCRRuns: CR CR LF is one line break for the writer, the fingerprint and
// the header parser alike; the writer counts the CRs it dropped, and the
// lone-CR fingerprint of the source still matches what mailmove 0.1 stored
// (every CR a break).
func TestCRRuns(t *testing.T) {
	src := "From: a@b\r\r\nSubject: x\r\r\n\r\r\nline 1\r\r\nline 2\r\r\n"
	var out bytes.Buffer
	w := &CRLFWriter{W: &out}
	w.Write([]byte(src))
	w.Close()
	want := "From: a@b\r\nSubject: x\r\n\r\nline 1\r\nline 2\r\n"
	if out.String() != want || w.Collapsed != 5 {
		t.Fatalf("got %q, %d collapsed; want %q, 5", out.String(), w.Collapsed, want)
	}
	if FingerprintBytes([]byte(src)) != FingerprintBytes([]byte(want)) {
		t.Error("CR CR LF and CRLF fingerprints differ")
	}
	if h := ParseHeader([]byte(src)); h.Get("Subject") != "x" || len(h) != 2 {
		t.Errorf("header parsed as %v", h)
	}
	// What 0.1 stored: each CR of the run was a break of its own. OldForm
	// rebuilds it from the new output and where the runs were.
	old := strings.ReplaceAll(src, "\r\r\n", "\r\n\r\n")
	r, complete := OldForm(bytes.NewReader(out.Bytes()), w)
	rebuilt, err := io.ReadAll(iotest.OneByteReader(r))
	if err != nil || !complete || string(rebuilt) != old {
		t.Fatalf("old form %q (%v, complete %v), want %q", rebuilt, err, complete, old)
	}
	// Chunking does not matter to the fingerprint.
	for chunk := 1; chunk < 5; chunk++ {
		a := NewFingerprinter()
		for p := []byte(src); len(p) > 0; {
			n := min(chunk, len(p))
			a.Write(p[:n])
			p = p[n:]
		}
		if a.Sum() != FingerprintBytes([]byte(want)) {
			t.Fatalf("chunks of %d change the fingerprint", chunk)
		}
	}
}

// TestCRLFWriterNULEnd: a message ending with a NUL byte still gets its
// final line break.
func TestCRLFWriterNULEnd(t *testing.T) {
	var out bytes.Buffer
	w := &CRLFWriter{W: &out}
	w.Write([]byte("a\x00"))
	w.Close()
	if out.String() != "a\x00\r\n" {
		t.Fatalf("%q", out.String())
	}
}
