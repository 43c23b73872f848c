package imap

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/wire"
)

// FuzzAppendReplies: whatever a hostile or broken server answers to a batch
// of appends, the client returns one result per message, never panics and
// never hangs (its idle deadline ends a silent server).
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
		}
	})
}
