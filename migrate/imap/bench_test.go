package imap

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/internal/faultproxy"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/mime"
)

// BenchmarkAppend is the numbers behind the APPEND design: 300 real-world
// messages (2 to 20 KB) into Dovecot over TLS, at 0 and 40 ms of round trip,
// with go-imap one at a time (every literal over 4 KB synchronizing: a round
// trip more per message), and with our pipe: LITERAL+ only (one APPEND per
// message, pipelined), MULTIAPPEND with LITERAL+ (one round trip per batch of
// 100), and that over four connections with ordered commits.
func BenchmarkAppend(b *testing.B) {
	dovecottest.Need(b, dovecot)
	var msgs []migrate.Outgoing
	for _, m := range mailgen.Mailbox(mailgen.Options{Seed: 5, Count: 300, MaxAttach: 18 << 10}) {
		var crlf bytesWriter
		w := &mime.CRLFWriter{W: &crlf}
		w.Write(m)
		w.Close()
		msgs = append(msgs, migrate.Outgoing{Body: migrate.BodyFromBytes(crlf), Flags: []string{`\Seen`}})
	}
	for _, rtt := range []time.Duration{0, 40 * time.Millisecond} {
		for _, v := range []struct {
			name           string
			conns          int // 0: go-imap
			multi, literal bool
		}{{"go-imap", 0, false, false}, {"literal+", 1, false, true}, {"multiappend", 1, true, true}, {"multiappend-4conns", 4, true, true}} {
			b.Run(fmt.Sprintf("%s-%dms", v.name, rtt.Milliseconds()), func(b *testing.B) {
				for b.Loop() {
					u, err := dovecot.AddUser()
					if err != nil {
						b.Fatal(err)
					}
					px, _ := faultproxy.Start(dovecot.IMAPS)
					px.Always(faultproxy.Fault{Latency: rtt / 2})
					cfg := dovecotConfig(b, u)
					cfg.Addr, cfg.noMultiAppend, cfg.noLiteralPlus = px.Addr(), !v.multi, !v.literal
					d := New(cfg)
					start := time.Now()
					if v.conns == 0 {
						for _, m := range msgs {
							if _, err := d.Append(context.Background(), "INBOX", m); err != nil {
								b.Fatal(err)
							}
						}
					} else {
						p := d.Pipe(v.conns)
						for i := 0; i < len(msgs); i += 100 {
							p.Send(context.Background(), "INBOX", msgs[i:min(i+100, len(msgs))], func(res []migrate.AppendResult) {
								for _, r := range res {
									if r.Err != nil {
										b.Error(r.Err)
									}
								}
							})
						}
						p.Close()
					}
					took := time.Since(start)
					d.Close()
					px.Close()
					b.ReportMetric(float64(len(msgs))/took.Seconds(), "msgs/s")
					b.ReportMetric(took.Seconds(), "s/run")
				}
			})
		}
	}
}

type bytesWriter []byte

func (w *bytesWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
