package mime

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	stdmime "mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var repairDate = time.Date(2025, 8, 20, 9, 0, 0, 0, time.UTC)

// repairOptions gives fixtures named opt-* the target-driven repairs.
func repairOptions(name string) RepairOptions {
	o := RepairOptions{Date: repairDate}
	if strings.HasPrefix(name, "opt-") {
		o.EncodeHeaders, o.FoldLines, o.CloseParts = true, true, true
	}
	return o
}

func renderRepair(r Repaired) string {
	var b strings.Builder
	fmt.Fprintf(&b, "changed: %v\nreview: %v\n", r.Changed, r.Review)
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "finding %s: %s\n  change: %s\n", f.Code, f.Text, f.Change)
	}
	b.WriteString("--- message\n")
	b.Write(r.Msg)
	return b.String()
}

// TestRepairGolden runs every fixture in testdata/repair through Repair and
// compares with NAME.golden (go test -update rewrites them; a mismatch
// writes NAME.golden.got).
func TestRepairGolden(t *testing.T) {
	files, _ := filepath.Glob("../testdata/repair/*.eml")
	if len(files) < 25 {
		t.Fatalf("fixtures missing: %d", len(files))
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".eml")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r := Repair(in, repairOptions(name))
			got := renderRepair(r)
			golden := strings.TrimSuffix(path, ".eml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update creates it)", err)
			}
			if got != string(want) {
				os.WriteFile(golden+".got", []byte(got), 0o644)
				t.Errorf("differs from %s (see .got)", golden)
			}
			checkRepaired(t, in, r, repairOptions(name))
			switch {
			case strings.HasPrefix(name, "legit-") || name == "clean":
				if r.Changed || len(r.Findings) > 0 || !bytes.Equal(r.Msg, in) {
					t.Errorf("a message that needs nothing was changed: %v", r.Codes())
				}
			case strings.HasPrefix(name, "xml-") && name != "xml-no-message":
				if len(r.Findings) == 0 || r.Findings[0].Code != "xml-unwrapped" || r.Review {
					t.Errorf("not unwrapped: %v", r.Codes())
				}
				if !bytes.Contains(r.Msg, []byte("Message-ID: <rentree-2025@example.net>")) || bytes.Contains(r.Msg, []byte("<?xml")) {
					t.Errorf("the inner message is not what came out")
				}
				if name == "xml-cdata-entities" {
					// A CDATA section is literal (XML 1.0 section 2.7): the
					// HTML's own entities stay as the sender wrote them.
					_, cdata, _ := bytes.Cut(in, []byte("<![CDATA["))
					cdata, _, _ = bytes.Cut(cdata, []byte("]]>"))
					if _, body, _ := bytes.Cut(r.Msg, []byte("\r\n\r\n")); !bytes.Contains(cdata, body) || !bytes.Contains(body, []byte("&lt;b&gt;")) {
						t.Errorf("the CDATA text was not taken literally: %q", body)
					}
				}
			case name == "opt-multipart-unclosed":
				// Go's own multipart reader, a witness apart from ours:
				// the input ends in the middle, the output reads to the end.
				if err := readAllParts(in); err == nil {
					t.Error("the fixture is not broken: the standard reader reads it whole")
				}
				if err := readAllParts(r.Msg); err != nil {
					t.Errorf("repaired message does not read to its end: %v", err)
				}
			case name == "opt-header-8bit-addresses":
				checkDowngrade(t, r.Msg)
			case name == "opt-header-8bit-structure":
				checkStructureKept(t, r.Msg)
			case name == "cr-cr-lf":
				// CR CR LF is one line break (old Outlook), not a blank line more.
				if want := bytes.ReplaceAll(in, []byte("\r\r\n"), []byte("\r\n")); r.Changed || !bytes.Equal(r.Msg, want) {
					t.Errorf("got %q, want %q", r.Msg, want)
				}
			}
		})
	}
}

// checkRepaired holds for every repair: the output parses as a mail, a
// second repair changes nothing, and a changed message says so in its header.
func checkRepaired(t *testing.T, in []byte, r Repaired, opts RepairOptions) {
	t.Helper()
	if _, err := mail.ReadMessage(bytes.NewReader(r.Msg)); err != nil {
		t.Fatalf("output does not parse: %v\n%q", err, r.Msg)
	}
	if bytes.IndexByte(r.Msg, 0) >= 0 {
		t.Fatalf("output holds NUL")
	}
	again := Repair(r.Msg, opts)
	if again.Changed || len(again.Findings) > 0 || !bytes.Equal(again.Msg, r.Msg) {
		t.Fatalf("not idempotent: second pass %v\nfirst:  %q\nsecond: %q", again.Codes(), r.Msg, again.Msg)
	}
	if r.Changed != bytes.HasPrefix(r.Msg, []byte(RepairHeader+": ")) {
		t.Fatalf("changed=%v but the repair header is %v", r.Changed, !r.Changed)
	}
	if !r.Changed && !bytes.Equal(r.Msg, toCRLF(in)) {
		t.Fatalf("unchanged message differs from its CRLF form")
	}
	// The probe, fed in odd-sized chunks, must flag every message Repair
	// changes: the pipeline repairs only what it flags.
	var p Probe
	for rest := in; len(rest) > 0; {
		n := min(len(rest), 7)
		p.Write(rest[:n])
		rest = rest[n:]
	}
	if r.Changed && !p.Needs(opts) {
		t.Fatalf("Repair changed the message (%v) but the probe saw no need", r.Codes())
	}
}

// FuzzRepair: any bytes: no panic, output parses, idempotent.
func FuzzRepair(f *testing.F) {
	files, _ := filepath.Glob("../testdata/repair/*.eml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, strings.Contains(p, "opt-"))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, opt bool) {
		opts := RepairOptions{Date: repairDate, EncodeHeaders: opt, FoldLines: opt, CloseParts: opt}
		checkRepaired(t, in, Repair(in, opts), opts)
	})
}

// readAllParts reads every part of a multipart message, nested ones
// included, with the standard library.
func readAllParts(msg []byte) error {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return err
	}
	return readParts(m.Header.Get("Content-Type"), m.Body)
}

func readParts(ctype string, body io.Reader) error {
	t, params, err := stdmime.ParseMediaType(ctype)
	if err != nil || !strings.HasPrefix(t, "multipart/") {
		_, err := io.Copy(io.Discard, body)
		return err
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := readParts(p.Header.Get("Content-Type"), p); err != nil {
			return err
		}
	}
}

// checkDowngrade reads the repaired header of opt-header-8bit-addresses
// with the standard library's decoders and finds every name, address and
// file name of the original in it, and no 8-bit byte.
func checkDowngrade(t *testing.T, msg []byte) {
	t.Helper()
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, c := range head {
		if c >= 0x80 {
			t.Fatalf("8-bit byte left in the header: %q", head)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Zoë Dupré, service client" || from[0].Address != "zoe@example.org" {
		t.Errorf("From reads as %v (%v)", from, err)
	}
	// Go's address parser knows no groups: read the names of To by hand.
	dec := stdmime.WordDecoder{}
	to, err := dec.DecodeHeader(m.Header.Get("To"))
	for _, want := range []string{"Renée <renee@example.org>", "jérôme@exemple.fr :;", "André andré@exemple.fr :;"} {
		if err != nil || !strings.Contains(to, want) {
			t.Errorf("To decodes as %q (%v), without %q", to, err, want)
		}
	}
	subject, _ := dec.DecodeHeader(m.Header.Get("Subject"))
	if subject != "facture déjà payée par élodie@exemple.fr" {
		t.Errorf("Subject decodes as %q", subject)
	}
	for _, f := range []string{"Content-Type", "Content-Disposition"} {
		_, params, err := stdmime.ParseMediaType(m.Header.Get(f))
		if err != nil || params["name"]+params["filename"] != "résumé.pdf" {
			t.Errorf("%s: %v %v", f, params, err)
		}
	}
}

// checkStructureKept reads the repaired header of opt-header-8bit-structure
// with the standard library: spaces, tabs and Unicode spaces of the text
// are those of the original, a group keeps its name and members, the
// boundary still splits the parts, the 8-bit parameter reads back, and a
// field mixing UTF-8 and Latin-1 reads each word in its own charset.
func checkStructureKept(t *testing.T, msg []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	dec := stdmime.WordDecoder{}
	for field, want := range map[string]string{
		"Subject": "東京\u3000タワー  two\tspaces  and a fold",
		"X-Mixed": "café été",
	} {
		if got, err := dec.DecodeHeader(m.Header.Get(field)); err != nil || got != want {
			t.Errorf("%s decodes as %q (%v), want %q", field, got, err, want)
		}
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Zoë  Dupré" {
		t.Errorf("From reads as %v (%v)", from, err)
	}
	// Go's address parser flattens groups: the group's name is read by hand.
	to := m.Header.Get("To")
	name, members, ok := strings.Cut(to, ":")
	if got, _ := dec.DecodeHeader(name); !ok || got != "Équipe vente" {
		t.Errorf("To's group name decodes as %q in %q", got, to)
	}
	list, err := mail.ParseAddressList(strings.Replace(members, ";", "", 1))
	if err != nil || len(list) != 3 || list[0].Address != "a@example.org" || list[1].Name != "B  b" || list[2].Address != "c@example.org" {
		t.Errorf("To's members read as %v (%v) in %q", list, err, to)
	}
	_, params, err := stdmime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || params["boundary"] != "XYZ" || params["name"] != "Übersicht.pdf" {
		t.Fatalf("Content-Type: %v %v", params, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var texts []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		texts = append(texts, string(b))
	}
	if strings.Join(texts, ",") != "hello,world" {
		t.Errorf("parts read as %q", texts)
	}
}
