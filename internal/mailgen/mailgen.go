// Package mailgen writes deterministic, realistic mailboxes for tests and
// benchmarks: the shapes real mail takes (plain, HTML alternatives,
// attachments, quoted-printable French text, 8-bit bodies, lines starting
// with "." or "From ", very long lines, LF-only endings, no Message-ID,
// duplicates, Orange-style delivery headers), with a realistic size mix.
package mailgen

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Options shape a mailbox.
type Options struct {
	Seed       uint64
	Count      int
	MaxAttach  int     // largest attachment in bytes; 0 means 200 KB
	Duplicates float64 // share of messages that repeat an earlier one
	// Spam is the share of messages the provider's filter marks as spam
	// (Orange's X-me-spamlevel, above its inbound Received: line); when it
	// is set, every other message carries the filter's ham verdict.
	Spam float64
	// Forged is the share of messages carrying a sender-written spam
	// verdict below the inbound Received: line, which must not count.
	Forged float64
}

var (
	senders  = []string{"Jean Dupont <jean.dupont@orange.fr>", "marie.martin@wanadoo.fr", "\"Service Client\" <noreply@laposte.net>", "=?UTF-8?Q?Ren=C3=A9e_Lef=C3=A8vre?= <renee@free.fr>", "bob@example.com", "factures@edf.fr"}
	subjects = []string{"Réunion de lundi", "Your invoice", "=?UTF-8?B?RsOpbGljaXRhdGlvbnMgIQ==?=", "Re: vacances", "Photos", "[Newsletter] Novembre", "Fwd: contrat", "Ordre du jour"}
	words    = strings.Fields("le la les un une des et est pas pour que qui dans sur avec mail message bonjour merci cordialement réunion été très à demain the and of to in is that it for on with was")
)

// Mailbox returns opts.Count messages.
func Mailbox(opts Options) [][]byte {
	msgs, _ := Labelled(opts)
	return msgs
}

// Labelled returns opts.Count messages and, for each, whether the
// provider's filter marked it as spam.
func Labelled(opts Options) ([][]byte, []bool) {
	if opts.MaxAttach <= 0 {
		opts.MaxAttach = 200 << 10
	}
	r := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	out := make([][]byte, 0, opts.Count)
	spam := make([]bool, 0, opts.Count)
	for i := 0; i < opts.Count; i++ {
		if i > 0 && r.Float64() < opts.Duplicates {
			j := r.IntN(len(out))
			out, spam = append(out, out[j]), append(spam, spam[j])
			continue
		}
		m, s := message(r, i, opts)
		out, spam = append(out, m), append(spam, s)
	}
	return out, spam
}

func text(r *rand.Rand, n int) string {
	var b strings.Builder
	col := 0
	for b.Len() < n {
		w := words[r.IntN(len(words))]
		if col+len(w) > 72 {
			b.WriteString("\r\n")
			col = 0
		}
		b.WriteString(w + " ")
		col += len(w) + 1
	}
	return b.String()
}

func message(r *rand.Rand, i int, opts Options) ([]byte, bool) {
	date := time.Date(2015, 1, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(i)*97*time.Minute + time.Duration(r.IntN(3600))*time.Second)
	var h strings.Builder
	fmt.Fprintf(&h, "Return-Path: <sender%d@example.org>\r\n", i)
	// As Orange delivers: an internal hop, the filter's verdict, then the
	// inbound line where Orange took the message from the sender's relay.
	fmt.Fprintf(&h, "Received: from mwinf5c%02d (mwinf5c%02d [10.232.3.%d])\r\n\tby mwinf5c%02d with ME\r\n\tid %dx; %s\r\n",
		(i+1)%40, (i+1)%40, i%250, i%40, 1000+i, date.Add(2*time.Second).Format(time.RFC1123Z))
	spam := opts.Spam > 0 && r.Float64() < opts.Spam
	switch {
	case spam:
		// Orange's spam value has no public sample: any value but not-spam.
		fmt.Fprintf(&h, "X-me-spamlevel: high\r\nX-me-spamrating: %d.0\r\n", 80+r.IntN(20))
	case opts.Spam > 0 || i%7 == 0:
		h.WriteString("X-me-spamlevel: not-spam\r\nX-me-spamrating: 12\r\n")
	}
	fmt.Fprintf(&h, "Received: from relay.example.org (relay.example.org [192.0.2.%d])\r\n\tby mwinf5c%02d with ME; %s\r\n",
		i%250, (i+1)%40, date.Add(time.Second).Format(time.RFC1123Z))
	if opts.Forged > 0 && r.Float64() < opts.Forged {
		h.WriteString("X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=15.0 required=5.0\r\n")
	}
	fmt.Fprintf(&h, "From: %s\r\nTo: jean.dupont@orange.fr\r\nSubject: %s %d\r\nDate: %s\r\n",
		senders[r.IntN(len(senders))], subjects[r.IntN(len(subjects))], i, date.Format(time.RFC1123Z))
	if i%23 != 5 {
		fmt.Fprintf(&h, "Message-ID: <%d.%x@mailgen.example>\r\n", i, r.Uint32())
	}
	h.WriteString("MIME-Version: 1.0\r\n")
	var body string
	switch k := r.IntN(10); {
	case k < 4: // plain text, with the lines that trouble POP3 and mbox
		h.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
		body = text(r, 500+r.IntN(6000)) + "\r\n.\r\n..hidden dot\r\nFrom the start of a line\r\n>From quoted\r\n" + text(r, 200)
	case k < 7: // alternative
		b := fmt.Sprintf("alt-%d", i)
		fmt.Fprintf(&h, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n", b)
		t := text(r, 1000+r.IntN(8000))
		body = fmt.Sprintf("--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>%s</p></body></html>\r\n--%s--\r\n",
			b, strings.ReplaceAll(t, "é", "=C3=A9"), b, t, b)
	case k < 9: // attachment
		b := fmt.Sprintf("mixed-%d", i)
		fmt.Fprintf(&h, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n", b)
		n := 2000 + r.IntN(opts.MaxAttach)
		raw := make([]byte, n)
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(raw)
		var lines strings.Builder
		for len(enc) > 76 {
			lines.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		lines.WriteString(enc + "\r\n")
		body = fmt.Sprintf("--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n--%s\r\nContent-Type: application/pdf; name=\"facture-%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"facture-%d.pdf\"\r\n\r\n%s--%s--\r\n",
			b, text(r, 300), b, i, i, lines.String(), b)
	default: // a long unbroken line (HTML mailers do this)
		h.WriteString("Content-Type: text/html; charset=utf-8\r\n")
		body = "<html><body>" + strings.Repeat("<td>cellule</td>", 300+r.IntN(600)) + "</body></html>\r\n"
	}
	msg := h.String() + "\r\n" + body
	if i%31 == 3 {
		msg = strings.ReplaceAll(msg, "\r\n", "\n") // LF-only, as some stores keep it
	}
	return []byte(msg), spam
}
