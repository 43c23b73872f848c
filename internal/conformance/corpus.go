// Package conformance is the suite every source and destination of mailmove
// passes: one migration, POP3 to IMAP, between real servers, checked from
// outside by the tests' own readers (internal/mailcheck, go-imap, net/mail),
// never by the code under test. It runs against Dovecot, Cyrus and Courier
// in `make test`, and against maddy and mox in `make interop`.
package conformance

import (
	"fmt"
	"strings"

	"github.com/mailmove/mailmove/internal/mailgen"
)

// Msg is one message of the corpus and what its provider's filter said.
type Msg struct {
	Data []byte
	Spam bool
}

// Corpus is n realistic messages (mailgen: French text, 8-bit headers,
// lines starting with "." and "From ", attachments, LF-only endings, no
// Message-ID, Orange's spam verdicts on a fifth of them) and, among them,
// the shapes that trouble servers, each a few times:
//   - raw 8-bit header bytes in UTF-8 and in Latin-1, in names, subjects,
//     file names, and an internationalised address (RFC 6532);
//   - CR CR LF line breaks (old Outlook);
//   - a NUL byte in a body, a line over 998 octets, a multipart whose
//     close delimiter is missing (a message cut short).
func Corpus(seed uint64, n int) []Msg {
	msgs, spam := mailgen.Labelled(mailgen.Options{Seed: seed, Count: n, MaxAttach: 60 << 10, Spam: 0.2})
	out := make([]Msg, 0, n+12)
	for i := range msgs {
		out = append(out, Msg{Data: msgs[i], Spam: spam[i]})
	}
	for i := 0; i < 3; i++ {
		for _, s := range special(i) {
			out = append(out, Msg{Data: []byte(s)})
		}
	}
	return out
}

// received is an Orange delivery with the filter's ham verdict.
func received(i int) string {
	return fmt.Sprintf("Received: from mwinf5c%02d (mwinf5c%02d [10.232.3.9])\r\n\tby mwinf5c00 with ME\r\n\tid %dz; Tue, 3 Mar 2020 10:%02d:00 +0100\r\n"+
		"X-me-spamlevel: not-spam\r\n"+
		"Received: from relay.example.org (relay.example.org [192.0.2.7])\r\n\tby mwinf5c00 with ME; Tue, 3 Mar 2020 10:%02d:00 +0100\r\n", i, i, i, i, i)
}

func special(i int) []string {
	mid := func(kind string) string { return fmt.Sprintf("Message-ID: <%s-%d@conformance.example>\r\n", kind, i) }
	date := fmt.Sprintf("Date: Tue, 3 Mar 2020 10:%02d:00 +0100\r\n", i)
	return []string{
		received(i) + "From: \"Zo\xc3\xab Dupr\xc3\xa9\" <zoe@example.org>\r\nTo: j\xc3\xa9r\xc3\xb4me@exemple.fr\r\nSubject: R\xc3\xa9union d\xc3\xa9j\xc3\xa0 pr\xc3\xa9vue " + fmt.Sprint(i) + "\r\n" +
			date + mid("utf8") + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCorps accentu\xc3\xa9.\r\n" +
			"--b\r\nContent-Type: application/pdf; name=\"r\xc3\xa9sum\xc3\xa9.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n",
		received(i) + "From: Ren\xe9e Lef\xe8vre <renee@example.org>\r\nSubject: caf\xe9 cr\xe8me " + fmt.Sprint(i) + "\r\n" + date + mid("latin1") +
			"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nTexte en Latin-1 : \xe0 bient\xf4t.\r\n",
		strings.ReplaceAll(received(i)+"From: a@example.org\r\nSubject: vieux Outlook "+fmt.Sprint(i)+"\r\n"+date+mid("crcrlf")+
			"\r\nune ligne\r\nune autre\r\n.\r\n..deux points\r\n", "\r\n", "\r\r\n"),
		received(i) + "From: a@example.org\r\nSubject: NUL " + fmt.Sprint(i) + "\r\n" + date + mid("nul") + "\r\navant \x00 apr\xc3\xa8s\r\n",
		received(i) + "From: a@example.org\r\nSubject: long line " + fmt.Sprint(i) + "\r\n" + date + mid("long") +
			"Content-Type: text/html\r\n\r\n<p>" + strings.Repeat("cellule ", 200) + "</p>\r\n",
		received(i) + "From: a@example.org\r\nSubject: cut short " + fmt.Sprint(i) + "\r\n" + date + mid("unclosed") +
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"cut\"\r\n\r\n--cut\r\nContent-Type: text/plain\r\n\r\nla suite manque\r\n" +
			"--cut\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n",
	}
}
