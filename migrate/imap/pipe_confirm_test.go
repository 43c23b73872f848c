package imap

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/mailmove/mailmove/migrate"
)

// TestPipelinedUnconfirmed: LITERAL+ without MULTIAPPEND (maddy's
// capabilities) sends one APPEND per message, pipelined. The server reads
// the first and drops the connection without a tagged reply: nothing was
// confirmed, so no result may say stored.
func TestPipelinedUnconfirmed(t *testing.T) {
	s := &script{caps: "LITERAL+ UIDPLUS", answer: func([][]byte) string { return "" }}
	var msgs []migrate.Outgoing
	for range 3 {
		msgs = append(msgs, migrate.Outgoing{Body: migrate.BodyFromBytes([]byte(
			"Subject: big\r\n\r\n" + strings.Repeat("x", 4<<20) + "\r\n"))})
	}
	res := sendOne(New(plainConfig(s.start(t))).Pipe(1), msgs)
	for i, r := range res {
		if r.Err == nil {
			t.Errorf("message %d reported stored (uid %d), but the server never answered its APPEND", i, r.UID)
		}
	}
}

// TestSyncLiteralAfterPipelined: a server with LITERAL+ and UTF8=ACCEPT but
// neither MULTIAPPEND nor BINARY refuses the first APPEND; the second
// message has an 8-bit header, so it goes in a synchronizing literal8 behind
// the pipelined first. The first one's NO must not be taken for the "+" nor
// lost: it stays refused, and the second is stored.
func TestSyncLiteralAfterPipelined(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "* OK ready\r\n")
		n := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			tag, rest, _ := strings.Cut(line, " ")
			verb, _, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(verb) {
			case "CAPABILITY":
				fmt.Fprintf(conn, "* CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS UTF8=ACCEPT\r\n%s OK done\r\n", tag)
			case "LOGIN", "ENABLE":
				fmt.Fprintf(conn, "%s OK done\r\n", tag)
			case "LOGOUT":
				fmt.Fprintf(conn, "* BYE\r\n%s OK done\r\n", tag)
				return
			case "APPEND":
				for {
					size, ok := literalSize(line)
					if !ok {
						break
					}
					if !strings.HasSuffix(line, "+}") {
						fmt.Fprintf(conn, "+ go ahead\r\n")
					}
					if _, err := io.CopyN(io.Discard, br, int64(size)); err != nil {
						return
					}
					if line, err = br.ReadString('\n'); err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
				}
				n++
				if n == 1 {
					fmt.Fprintf(conn, "%s NO refused\r\n", tag)
				} else {
					fmt.Fprintf(conn, "%s OK [APPENDUID 1 %d] done\r\n", tag, n)
				}
			default:
				fmt.Fprintf(conn, "%s BAD what\r\n", tag)
			}
		}
	}()
	cfg := plainConfig(ln.Addr().String())
	cfg.UTF8 = true
	msgs := []migrate.Outgoing{
		{Body: migrate.BodyFromBytes([]byte("Subject: plain\r\n\r\nbody\r\n"))},
		{Body: migrate.BodyFromBytes([]byte("Subject: caf\xc3\xa9\r\n\r\nbody\r\n"))},
	}
	res := sendOne(New(cfg).Pipe(1), msgs)
	if res[0].Err == nil {
		t.Errorf("message 0 reported stored, but the server said NO to it")
	}
	if res[1].Err != nil || res[1].UID != 2 {
		t.Errorf("message 1: err %v, uid %d; want stored as uid 2", res[1].Err, res[1].UID)
	}
}
