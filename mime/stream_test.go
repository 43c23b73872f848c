package mime

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// streamable reports whether Repair's result on in is one RepairTo must
// match: RepairTo does not look for mail wrapped in XML, and for a message
// without a header keeps NUL bytes of its first paragraph (to encode them)
// where Repair drops them.
func streamable(r Repaired) bool {
	codes := r.Codes()
	for _, c := range codes {
		if strings.HasPrefix(c, "xml-") {
			return false
		}
	}
	return !(slices.Contains(codes, "no-header") && slices.Contains(codes, "nul-header"))
}

// checkStream runs RepairTo on in and compares with Repair.
func checkStream(t *testing.T, name string, in []byte, opts RepairOptions) {
	t.Helper()
	want := Repair(in, opts)
	if !streamable(want) {
		return
	}
	m := toCRLF(in)
	var out bytes.Buffer
	got, err := RepairTo(bytes.NewReader(m), int64(len(m)), opts, &out)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got.Changed != want.Changed || !slices.Equal(got.Codes(), want.Codes()) {
		t.Fatalf("%s: codes %v (changed %v), Repair %v (changed %v)", name, got.Codes(), got.Changed, want.Codes(), want.Changed)
	}
	if !want.Changed {
		if out.Len() != 0 {
			t.Fatalf("%s: wrote %d bytes for a message that needs nothing", name, out.Len())
		}
		return
	}
	if !bytes.Equal(out.Bytes(), want.Msg) {
		i := 0
		for i < min(out.Len(), len(want.Msg)) && out.Bytes()[i] == want.Msg[i] {
			i++
		}
		t.Fatalf("%s: differs at %d\nstream: %q\nmemory: %q", name, i, clip(out.Bytes()[i:]), clip(want.Msg[i:]))
	}
	for i := range want.Findings {
		if got.Findings[i].Change != want.Findings[i].Change {
			t.Fatalf("%s: finding %s says %q, Repair %q", name, want.Findings[i].Code, got.Findings[i].Change, want.Findings[i].Change)
		}
	}
}

func clip(b []byte) []byte { return b[:min(len(b), 120)] }

// TestRepairToMatchesRepair: on every fixture, with and without the
// options, the streaming repair writes what the in-memory repair makes.
func TestRepairToMatchesRepair(t *testing.T) {
	files, _ := filepath.Glob("../testdata/repair/*.eml")
	for _, path := range files {
		in, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, all := range []bool{false, true} {
			opts := RepairOptions{Date: repairDate, EncodeHeaders: all, FoldLines: all, CloseParts: all}
			checkStream(t, filepath.Base(path), in, opts)
		}
	}
	long := strings.Repeat("x", 3000)
	extra := map[string]string{
		"nul in a base64 part": "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\x00REVG\r\n--b--\r\n",
		"nul in qp":            "Subject: q\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db\x00c=\r\nd\r\n",
		"long text line":       "Subject: l\r\nContent-Type: text/plain\r\n\r\n" + long + "\r\nshort\r\n",
		"long base64 line":     "Subject: l\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + strings.Repeat("QUJD", 800) + "\r\n",
		"long binary":          "Subject: l\r\nContent-Type: application/octet-stream\r\n\r\n" + long + "\r\n",
		"unclosed, long last":  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + long,
		"unclosed nested":      "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\nx\x00\r\n",
		"nul in a part header": "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-A: \x00\r\n\r\nbody\r\n--b--\r\nepi\x00logue\r\n",
		"headerless big":       strings.Repeat("just text\r\n", 50) + "\x00end",
		"blank":                "   \r\n\r\n\x00 ",
		"no final newline":     "Subject: x\r\n\r\nab\x00c",
		"rfc822 inside":        "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nnul\x00here\r\n",
	}
	for name, in := range extra {
		for _, all := range []bool{false, true} {
			checkStream(t, name, []byte(in), RepairOptions{Date: repairDate, EncodeHeaders: all, FoldLines: all, CloseParts: all})
		}
	}
}

// FuzzRepairTo: on any input, the streaming repair agrees with Repair.
func FuzzRepairTo(f *testing.F) {
	files, _ := filepath.Glob("../testdata/repair/*.eml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, true)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, opt bool) {
		checkStream(t, "fuzz", in, RepairOptions{Date: repairDate, EncodeHeaders: opt, FoldLines: opt, CloseParts: opt})
	})
}
