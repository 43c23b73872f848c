package imap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/wire"
)

// FuzzAppendReplies: whatever a hostile or broken server answers to a batch
// of appends, the client returns one result per message, reports none
// stored that the server did not say OK to, never panics and never hangs
// (its idle deadline ends a silent server).
func FuzzAppendReplies(f *testing.F) {
	f.Add([]byte("p1 OK [APPENDUID 1 1:3] done\r\n"))
	f.Add([]byte("* BYE going away\r\n"))
	f.Add([]byte("+ go\r\n+ go\r\n+ go\r\np1 NO [OVERQUOTA] full\r\n"))
	f.Add([]byte("* 1 FETCH (BODY[] {5}\r\nabcde)\r\np1 OK [APPENDUID 4294967295 1:4294967295] x\r\n"))
	f.Add([]byte("p1 OK [APPENDUID 1 1]\r\np2 NO no\r\np3 OK [APPENDUID 1 3] ok\r\n"))
	f.Add([]byte("{99999999}\r\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		for _, caps := range []map[string]bool{{"MULTIAPPEND": true, "LITERAL+": true}, {"LITERAL+": true}, {}} {
			client, server := net.Pipe()
			go io.Copy(io.Discard, server)
			go func() {
				server.Write(reply)
				server.Close()
			}()
			c := &pipeConn{cfg: Config{Timeout: 50 * time.Millisecond}, raw: client, caps: caps}
			c.setConn(&wire.IdleConn{Conn: client, Timeout: 50 * time.Millisecond})
			gate := make(chan struct{})
			close(gate)
			res, _ := c.appendBatch(context.Background(), "INBOX", threeMessages(), gate)
			client.Close()
			// The UIDs are the server's word, recorded as given: a broken
			// server may say anything there.
			if len(res) != 3 {
				t.Fatalf("%d results for 3 messages", len(res))
			}
			// A message is stored only when the server said OK to its
			// command (one MULTIAPPEND p1, else p1, p2, p3), and has a UID
			// only when the server gave one.
			for i, r := range res {
				tag := "p1"
				if !caps["MULTIAPPEND"] {
					tag = fmt.Sprintf("p%d", i+1)
				}
				if r.Err == nil && !okLine(reply, tag) {
					t.Fatalf("%v: message %d reported stored, but no %q OK is in %q", caps, i, tag, reply)
				}
				if r.Err == nil && r.UID != 0 && !bytes.Contains(bytes.ToUpper(reply), []byte("APPENDUID")) {
					t.Fatalf("%v: message %d given UID %d, but no APPENDUID is in %q", caps, i, r.UID, reply)
				}
			}
		}
	})
}

// okLine reports whether reply holds a line "TAG OK" (any case).
func okLine(reply []byte, tag string) bool {
	for _, l := range bytes.Split(reply, []byte("\n")) {
		if f := bytes.Fields(l); len(f) >= 2 && string(f[0]) == tag && strings.EqualFold(string(f[1]), "OK") {
			return true
		}
	}
	return false
}
