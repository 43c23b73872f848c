package mime

import (
	"strings"
	"testing"
)

// orange builds a header as Orange delivers it: an internal hop, the
// verdict, the inbound line (the trust boundary), then what the sender wrote.
func orange(verdict, belowBoundary string) string {
	return "Return-Path: <a@example.org>\n" +
		"Received: from mwinf5c61 (mwinf5c61 [10.232.8.70])\n\tby mwinf5c22 with ME\n\tid 1; Tue, 4 Mar 2025 10:00:02 +0100\n" +
		verdict +
		"Received: from relay.example.org ([192.0.2.7])\n\tby mwinf5c61 with ME\n\tid 2; Tue, 4 Mar 2025 10:00:01 +0100\n" +
		"Received: from [10.0.0.2] by relay.example.org; Tue, 4 Mar 2025 10:00:00 +0100\n" +
		belowBoundary +
		"From: a@example.org\nSubject: hello\n\n"
}

// generic: a provider with named hosts.
func generic(verdict, below string) string {
	return "Received: from mx1.provider.net (mx1.provider.net [198.51.100.1])\n\tby store3.provider.net; Tue, 4 Mar 2025 10:00:02 +0100\n" +
		verdict +
		"Received: from mail.sender.example ([203.0.113.9])\n\tby mx1.provider.net; Tue, 4 Mar 2025 10:00:01 +0100\n" +
		below +
		"From: a@sender.example\nSubject: hello\n\n"
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		junkFolder   bool
		keywords     []string
		want         Verdict
		basis        Basis
		detail       string // in the reason
	}{
		// Orange / Wanadoo / La Poste (Vade)
		{"orange ham", orange("X-me-spamlevel: not-spam\nX-me-spamrating: 12.0\n", ""), false, nil, Ham, BasisHeader, "X-me-spamlevel: not-spam"},
		{"orange unknown value", orange("X-me-spamlevel: high\n", ""), false, nil, Spam, BasisHeader, "not the known ham value"},
		{"orange forged below", orange("", "X-me-spamlevel: spam\n"), false, nil, Unknown, BasisNone, ""},
		// SpamAssassin
		{"sa spam", generic("X-Spam-Flag: YES\nX-Spam-Status: Yes, score=7.1 required=5.0\n", ""), false, nil, Spam, BasisHeader, "X-Spam-Flag: YES"},
		{"sa ham", generic("X-Spam-Status: No, score=-1.0 required=5.0\n", ""), false, nil, Ham, BasisHeader, "SpamAssassin"},
		{"sa forged below", generic("", "X-Spam-Flag: YES\n"), false, nil, Unknown, BasisNone, ""},
		{"sa forged ham below, spam above", generic("X-Spam-Flag: YES\n", "X-Spam-Flag: NO\n"), false, nil, Spam, BasisHeader, "YES"},
		// rspamd
		{"rspamd spam", generic("X-Spam: Yes\n", ""), false, nil, Spam, BasisHeader, "rspamd"},
		{"rspamd ham", generic("X-Spam: No\n", ""), false, nil, Ham, BasisHeader, "rspamd"},
		// OVH / Vade
		{"ovh ham", generic("X-VR-SPAMSTATE: OK\n", ""), false, nil, Ham, BasisHeader, "OVH"},
		{"ovh spam", generic("X-Ovh-Spamstate: SPAM\n", ""), false, nil, Spam, BasisHeader, "not the known ham value"},
		{"vade spam", generic("X-VADE-SPAMSTATE: spam:high\n", ""), false, nil, Spam, BasisHeader, "Vade"},
		{"vade clean", generic("X-VADE-SPAMSTATE: clean\n", ""), false, nil, Ham, BasisHeader, "Vade"},
		// SFR
		{"sfr ham", generic("X-sfr-spam: not-spam\n", ""), false, nil, Ham, BasisHeader, "SFR"},
		{"sfr unknown", generic("X-sfr-spam: probable\n", ""), false, nil, Spam, BasisHeader, "not the known ham value"},
		{"sfr forged", generic("", "X-sfr-spam: spam\n"), false, nil, Unknown, BasisNone, ""},
		// Free
		{"free spam", generic("X-ProXaD-SC: state=SPAM score=800\n", ""), false, nil, Spam, BasisHeader, "Free"},
		{"free ham", generic("X-ProXaD-SC: state=HAM score=0\n", ""), false, nil, Ham, BasisHeader, "Free"},
		// Microsoft
		{"ms scl spam", generic("X-MS-Exchange-Organization-SCL: 9\n", ""), false, nil, Spam, BasisHeader, "Microsoft"},
		{"ms scl trusted", generic("X-MS-Exchange-Organization-SCL: -1\n", ""), false, nil, Ham, BasisHeader, "Microsoft"},
		{"ms forefront spam", generic("X-Forefront-Antispam-Report: CIP:1.2.3.4;CTRY:FR;SFV:SPM;SFS:(1)\n", ""), false, nil, Spam, BasisHeader, "Microsoft"},
		{"ms forefront ham", generic("X-Forefront-Antispam-Report: CIP:1.2.3.4;SFV:NSPM;H:x\n", ""), false, nil, Ham, BasisHeader, "Microsoft"},
		{"ms forged", generic("", "X-MS-Exchange-Organization-SCL: 9\n"), false, nil, Unknown, BasisNone, ""},
		// United Internet
		{"gmx junk", generic("X-UI-Out-Filterresults: junk:10;V03:K0:abc\n", ""), false, nil, Spam, BasisHeader, "United Internet"},
		{"gmx notjunk", generic("X-UI-Out-Filterresults: notjunk:1;V03:K0:abc\n", ""), false, nil, Ham, BasisHeader, "United Internet"},
		// Bitdefender, Kaspersky
		{"bitdefender spam", generic("X-BitDefender-Spam: Yes (43)\n", ""), false, nil, Spam, BasisHeader, "Bitdefender"},
		{"bitdefender ham", generic("X-BitDefender-Spam: No (0)\n", ""), false, nil, Ham, BasisHeader, "Bitdefender"},
		{"kaspersky spam", generic("X-KLMS-AntiSpam-Status: spam\n", ""), false, nil, Spam, BasisHeader, "Kaspersky"},
		{"kaspersky ham", generic("X-KSMG-AntiSpam-Status: not spam\n", ""), false, nil, Ham, BasisHeader, "Kaspersky"},
		// Folders and keywords outrank headers.
		{"junk folder", generic("X-Spam: No\n", ""), true, nil, Spam, BasisFolder, "junk folder"},
		{"keyword junk", generic("X-Spam: No\n", ""), false, []string{`\Seen`, "$Junk"}, Spam, BasisKeyword, "$Junk"},
		{"keyword notjunk", generic("X-Spam: Yes\n", ""), false, []string{"NonJunk"}, Ham, BasisKeyword, "NonJunk"},
		{"legacy junk keyword", "Subject: x\n\n", false, []string{"Junk"}, Spam, BasisKeyword, "Junk"},
		// Weak or no evidence.
		{"subject tag only", strings.Replace(generic("", ""), "Subject: hello", "Subject: [SPAM] hello", 1), false, nil, Unknown, BasisNone, ""},
		{"no received", "X-Spam-Flag: YES\nSubject: x\n\n", false, nil, Unknown, BasisNone, ""},
		{"nothing", generic("", ""), false, nil, Unknown, BasisNone, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Classify(SpamInput{Header: ParseHeader([]byte(tc.header)), JunkFolder: tc.junkFolder, Keywords: tc.keywords})
			if c.Verdict != tc.want || c.Basis != tc.basis || !strings.Contains(c.Reason(), tc.detail) {
				t.Errorf("got %s (%s) %q, want %s (%s) with %q; evidence %+v", c.Verdict, c.Basis, c.Reason(), tc.want, tc.basis, tc.detail, c.Evidence)
			}
		})
	}
}

func TestClassifyLogsWeakAndForged(t *testing.T) {
	h := strings.Replace(orange("", "X-Spam-Flag: YES\n"), "Subject: hello", "Subject: [spam] hello", 1)
	c := Classify(SpamInput{Header: ParseHeader([]byte(h))})
	var bases []string
	for _, e := range c.Evidence {
		if e.Acted {
			t.Errorf("acted on %+v", e)
		}
		bases = append(bases, e.Basis)
	}
	if strings.Join(bases, ",") != "untrusted-header,subject" {
		t.Errorf("evidence %v, want the forged header and the subject tag recorded", bases)
	}
}

func TestTrustBoundary(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string // the field at the boundary, by its "by" host
	}{
		{orange("", ""), "mwinf5c61"},
		{generic("", ""), "mx1.provider.net"},
		{"Received: from a by localhost; x\nReceived: from b by mx.orange.fr; x\nReceived: from c by relay.other.example; x\n\n", "mx.orange.fr"},
		{"Received: from a by mx.provider.net; x\nReceived: from b by relay.other.example; x\n\n", "mx.provider.net"},
	} {
		h := ParseHeader([]byte(tc.header))
		i := TrustBoundary(h)
		if _, _, got := receivedHosts(h[i].Value); got != tc.want {
			t.Errorf("boundary at %q, want %q", got, tc.want)
		}
	}
}

// FuzzClassify: any header, any keywords: a verdict, never a panic, and
// never a verdict without evidence acted on.
func FuzzClassify(f *testing.F) {
	f.Add([]byte(orange("X-me-spamlevel: high\n", "X-Spam-Flag: YES\n")), "$Junk", false)
	f.Add([]byte("Received: from [1.2.3.4] by x\nX-Spam: Yes\n\n"), "", true)
	f.Fuzz(func(t *testing.T, header []byte, keyword string, junk bool) {
		c := Classify(SpamInput{Header: ParseHeader(header), JunkFolder: junk, Keywords: []string{keyword}})
		switch c.Verdict {
		case Unknown:
			if c.Basis != BasisNone {
				t.Fatalf("unknown with basis %q", c.Basis)
			}
		case Spam, Ham:
			if !strings.Contains(c.Reason(), ":") {
				t.Fatalf("verdict %s without evidence: %+v", c.Verdict, c)
			}
		default:
			t.Fatalf("verdict %q", c.Verdict)
		}
		_ = c.Key()
		_ = c.Explain()
	})
}
