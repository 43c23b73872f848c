package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-sasl"

	"github.com/mailmove/mailmove/internal/wire"
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/mime"
)

// Pipe implements migrate.Pipe: a few connections of its own, each sending
// a batch as one MULTIAPPEND (RFC 3502) with non-synchronizing literals
// (LITERAL+, RFC 7888), so that a batch costs one round trip however many
// messages it holds.
//
// go-imap sends every literal over 4 KB synchronizing (one round trip per
// message) and has no MULTIAPPEND: at 40 ms of round trip that alone is 80
// ms per message. Hence this small client for APPEND only; everything else
// (LIST, SELECT, FETCH) stays on go-imap.
//
// Order: the server gives UIDs when it commits an APPEND, which is when the
// command's final CRLF arrives. Each connection sends its whole batch but
// that CRLF, then waits until the previous batch for the same folder has
// finished. Uploads overlap; commits happen in source order.
type Pipe struct {
	cfg   Config
	jobs  chan *pipeBatch
	wg    sync.WaitGroup
	alive atomic.Int32 // workers still taking batches

	mu   sync.Mutex
	last map[string]chan struct{} // folder → done of the batch sent last
}

type pipeBatch struct {
	ctx    context.Context
	folder string
	msgs   []migrate.Outgoing
	prev   <-chan struct{} // closed when the folder's previous batch is done
	done   chan struct{}
	report func([]migrate.AppendResult)
}

var _ migrate.Pipeliner = (*Destination)(nil)

// Pipe implements migrate.Pipeliner.
func (d *Destination) Pipe(n int) migrate.Pipe {
	p := &Pipe{cfg: d.cfg, jobs: make(chan *pipeBatch), last: map[string]chan struct{}{}}
	p.alive.Store(int32(max(n, 1)))
	for range max(n, 1) {
		p.wg.Add(1)
		go p.worker()
	}
	return p
}

// Send implements migrate.Pipe.
func (p *Pipe) Send(ctx context.Context, folder string, msgs []migrate.Outgoing, done func([]migrate.AppendResult)) {
	b := &pipeBatch{ctx: ctx, folder: folder, msgs: msgs, done: make(chan struct{}), report: done}
	p.mu.Lock()
	if prev, ok := p.last[folder]; ok {
		b.prev = prev
	} else {
		closed := make(chan struct{})
		close(closed)
		b.prev = closed
	}
	p.last[folder] = b.done
	p.mu.Unlock()
	p.jobs <- b
}

// Close implements migrate.Pipe.
func (p *Pipe) Close() error {
	close(p.jobs)
	p.wg.Wait()
	return nil
}

func (p *Pipe) worker() {
	defer p.wg.Done()
	var c *pipeConn
	var err error // why c is nil
	connect := func() {
		// A refused login is not tried again (providers lock accounts
		// after repeated failures); other failures are, with the next batch.
		var auth *migrate.AuthError
		if c == nil && !errors.As(err, &auth) {
			c, err = dialPipe(context.Background(), p.cfg)
		}
	}
	connect() // at once: the handshakes overlap with the source's listing
	for b := range p.jobs {
		if b.ctx.Err() != nil {
			p.report(b, failAll(len(b.msgs), migrate.ErrNotSent))
			continue
		}
		connect()
		if c == nil {
			p.report(b, failAll(len(b.msgs), err))
			var auth *migrate.AuthError
			if errors.As(err, &auth) && p.alive.Load() > 1 {
				// The server will not have this many connections (a
				// limit per account): leave the work to the others.
				p.alive.Add(-1)
				return
			}
			continue
		}
		res, broken := c.appendBatch(b.ctx, b.folder, b.msgs, b.prev)
		if broken {
			c.close()
			c, err = nil, nil
		}
		p.report(b, res)
	}
	if c != nil {
		c.logout()
	}
}

// report hands a batch's results back, once the folder's previous batch is
// done: a failed batch must not let the next one commit early.
func (p *Pipe) report(b *pipeBatch, res []migrate.AppendResult) {
	<-b.prev
	b.report(res)
	close(b.done)
}

func failAll(n int, err error) []migrate.AppendResult {
	res := make([]migrate.AppendResult, n)
	for i := range res {
		res[i].Err = err
	}
	return res
}

// pipeConn is one raw IMAP connection used for APPEND only. Every read and
// write has an idle deadline of its own (wire.IdleConn): a frozen server is
// given up after cfg.Timeout of silence, a slow but moving upload is not.
type pipeConn struct {
	cfg  Config
	raw  net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	caps map[string]bool
	tag  int
	utf8 bool // UTF8=ACCEPT is enabled (RFC 6855)
}

// maxReply bounds one response line from the server.
const maxReply = 64 << 10

func dialPipe(ctx context.Context, cfg Config) (*pipeConn, error) {
	dial := cfg.Dialer
	if dial == nil {
		nd := &net.Dialer{Timeout: 30 * time.Second}
		dial = nd.DialContext
	}
	raw, err := dial(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	c := &pipeConn{cfg: cfg, raw: raw}
	var conn net.Conn = &wire.IdleConn{Conn: raw, Timeout: cfg.Timeout}
	if cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, cfg.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
		}
		conn = tc
	}
	c.setConn(conn)
	if err := c.open(ctx, conn); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

func (c *pipeConn) setConn(conn net.Conn) {
	c.br = bufio.NewReaderSize(conn, 32<<10)
	c.bw = bufio.NewWriterSize(conn, 64<<10)
}

// open reads the greeting, upgrades with STARTTLS when asked to, and logs in.
func (c *pipeConn) open(ctx context.Context, conn net.Conn) error {
	greeting, err := c.readLine()
	if err != nil {
		return fmt.Errorf("connect to %s: %w", c.cfg.Addr, err)
	}
	c.debug("S: " + greeting)
	if !strings.HasPrefix(greeting, "* OK") && !strings.HasPrefix(greeting, "* PREAUTH") {
		return fmt.Errorf("connect to %s: unexpected greeting %q", c.cfg.Addr, wire.Clip(greeting))
	}
	if err := c.capability(); err != nil {
		return err
	}
	if c.cfg.TLS == TLSStartTLS {
		if !c.caps["STARTTLS"] {
			return &migrate.Fatal{Err: fmt.Errorf("%s does not offer STARTTLS", c.cfg.Addr)}
		}
		if _, err := c.command("STARTTLS", "STARTTLS"); err != nil {
			return err
		}
		tc := tls.Client(conn, c.cfg.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("connect to %s: %w", c.cfg.Addr, err)
		}
		c.setConn(tc)
		if err := c.capability(); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(greeting, "* PREAUTH") {
		if err := c.login(); err != nil {
			return err
		}
	}
	if err := c.capability(); err != nil { // they change after login
		return err
	}
	if c.cfg.UTF8 && c.caps["UTF8=ACCEPT"] {
		// RFC 6855 section 3: 8-bit headers as they are, in APPEND's
		// UTF8 data item; folder names in UTF-8 from here on.
		if _, err := c.command("ENABLE", "ENABLE UTF8=ACCEPT"); err == nil {
			c.utf8 = true
		}
	}
	return nil
}

func (c *pipeConn) capability() error {
	c.caps = map[string]bool{}
	_, err := c.command("CAPABILITY", "CAPABILITY")
	return err
}

func (c *pipeConn) login() error {
	if c.cfg.Mechanism != "" {
		return c.tokenLogin()
	}
	pass, err := c.cfg.Password()
	if err != nil {
		return &migrate.Fatal{Err: err}
	}
	if !c.caps["AUTH=PLAIN"] {
		if c.caps["LOGINDISABLED"] {
			return &migrate.Fatal{Err: fmt.Errorf("%s refuses LOGIN on this connection (LOGINDISABLED)", c.cfg.Addr)}
		}
		_, err := c.command("LOGIN", "LOGIN "+quote(c.cfg.User)+" "+quote(pass))
		return c.loginErr(err, pass)
	}
	return c.loginErr(c.authenticate(sasl.NewPlainClient("", c.cfg.User, pass)), pass)
}

// tokenLogin signs in with an OAuth 2.0 access token. A refused token is
// asked for once more, as the other logins do: a helper that cached a
// token which has just expired prints a fresh one the second time.
func (c *pipeConn) tokenLogin() error {
	host, port := hostPort(c.cfg.Addr)
	var err error
	for try := 0; try < 2; try++ {
		token, terr := c.cfg.Token()
		if terr != nil {
			return &migrate.Fatal{Err: fmt.Errorf("get an access token for %s: %w", c.cfg.User, terr)}
		}
		client, cerr := saslClient(c.cfg.Mechanism, c.cfg.User, token, host, port)
		if cerr != nil {
			return &migrate.Fatal{Err: cerr}
		}
		err = c.authenticate(client)
		var no *replyError
		if err == nil || !errors.As(err, &no) {
			return err
		}
		err = c.loginErr(err, token)
	}
	return err
}

// loginErr turns a tagged refusal of a login into a migrate.AuthError,
// with secret (which the server may quote) redacted from its words.
func (c *pipeConn) loginErr(err error, secret string) error {
	var no *replyError
	if errors.As(err, &no) {
		no.text = migrate.RedactText(no.text, c.cfg.User, secret)
		return &migrate.Fatal{Err: &migrate.AuthError{Server: c.cfg.Addr, User: c.cfg.User, Reply: no.text, Err: err,
			Transient: no.code == "UNAVAILABLE"}}
	}
	return err
}

// authenticate runs AUTHENTICATE (RFC 3501 section 6.2.2), with the initial
// response on the command line when the server has SASL-IR (RFC 4959).
func (c *pipeConn) authenticate(client sasl.Client) error {
	mech, ir, err := client.Start()
	if err != nil {
		return &migrate.Fatal{Err: err}
	}
	c.tag++
	tag := "p" + strconv.Itoa(c.tag)
	line := tag + " AUTHENTICATE " + mech
	if ir != nil && c.caps["SASL-IR"] {
		enc := base64.StdEncoding.EncodeToString(ir)
		if enc == "" {
			enc = "="
		}
		line += " " + enc
		ir = nil
	}
	c.debug("C: " + tag + " AUTHENTICATE " + mech + " ***")
	if err := c.writeLine(line); err != nil {
		return err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(l, "+"):
			var resp []byte
			if ir != nil {
				resp, ir = ir, nil
			} else {
				ch, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(l, "+")))
				if resp, err = client.Next(ch); err != nil {
					c.writeLine("*") // cancel (RFC 3501 section 6.2.2)
					return err
				}
			}
			c.debug("C: ***")
			if err := c.writeLine(base64.StdEncoding.EncodeToString(resp)); err != nil {
				return err
			}
		case strings.HasPrefix(l, tag+" "):
			c.debug("S: " + l)
			return c.status(l[len(tag)+1:])
		default:
			c.debug("S: " + l)
			c.untagged(l)
		}
	}
}

func (c *pipeConn) writeLine(line string) error {
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
	return c.bw.Flush()
}

// command sends one command without literals and reads up to its tagged reply.
func (c *pipeConn) command(name, line string) (string, error) {
	c.tag++
	tag := "p" + strconv.Itoa(c.tag)
	shown := line
	if name == "LOGIN" {
		shown = "LOGIN ***"
	}
	c.debug("C: " + tag + " " + shown)
	if err := c.writeLine(tag + " " + line); err != nil {
		return "", err
	}
	return c.reply(tag)
}

// reply reads responses up to the one tagged tag and returns its text after
// OK, or a *replyError.
func (c *pipeConn) reply(tag string) (string, error) {
	for {
		l, err := c.readLine()
		if err != nil {
			return "", err
		}
		c.debug("S: " + l)
		if strings.HasPrefix(l, tag+" ") {
			rest := l[len(tag)+1:]
			return rest, c.status(rest)
		}
		if strings.HasPrefix(l, "* BYE") {
			return "", fmt.Errorf("the server closed the connection: %s", wire.Clip(l))
		}
		c.untagged(l)
	}
}

// untagged keeps what matters of an untagged response: the capabilities.
func (c *pipeConn) untagged(l string) {
	up := strings.ToUpper(l)
	if strings.HasPrefix(up, "* CAPABILITY ") {
		for _, f := range strings.Fields(up)[2:] {
			c.caps[f] = true
		}
	}
}

// replyError is a tagged NO or BAD.
type replyError struct {
	status, code, text string
}

func (e *replyError) Error() string {
	s := e.status
	if e.code != "" {
		s += " [" + e.code + "]"
	}
	return "server said " + s + " " + wire.Clip(e.text)
}

// status reads "OK|NO|BAD [CODE args] text".
func (c *pipeConn) status(rest string) error {
	word, text, _ := strings.Cut(rest, " ")
	word = strings.ToUpper(word)
	code := ""
	if strings.HasPrefix(text, "[") {
		if end := strings.IndexByte(text, ']'); end > 0 {
			code, text = text[1:end], strings.TrimSpace(text[end+1:])
		}
	}
	if word == "OK" {
		return nil
	}
	name, _, _ := strings.Cut(code, " ")
	return &replyError{status: word, code: strings.ToUpper(name), text: text}
}

// readLine reads one response line, with any literals it carries inlined,
// without its CRLF.
func (c *pipeConn) readLine() (string, error) {
	var out string
	for {
		line, err := wire.ReadLine(c.br, maxReply-len(out))
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return "", err
		}
		out += line
		n, ok := literalSize(line)
		if !ok {
			return out, nil
		}
		if n > maxReply-len(out) {
			return "", fmt.Errorf("reply literal of %d bytes", n)
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.br, lit); err != nil {
			return "", err
		}
		out += "\r\n" + string(lit)
	}
}

// literalSize reads a trailing "{n}" announcing a literal.
func literalSize(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line[open+1:len(line)-1], "+"))
	return n, err == nil && n >= 0
}

func (c *pipeConn) debug(line string) {
	if c.cfg.Debug != nil {
		fmt.Fprintln(c.cfg.Debug, line)
	}
}

func (c *pipeConn) close() { c.raw.Close() }

func (c *pipeConn) logout() {
	c.command("LOGOUT", "LOGOUT")
	c.raw.Close()
}

// appendBatch sends msgs to folder: as one MULTIAPPEND when the server has
// it, else as one APPEND each, pipelined when literals need not wait for the
// server's "+". The first command's final CRLF waits for gate. broken means
// the connection is out of step and must be closed.
func (c *pipeConn) appendBatch(ctx context.Context, folder string, msgs []migrate.Outgoing, gate <-chan struct{}) (res []migrate.AppendResult, broken bool) {
	res = make([]migrate.AppendResult, len(msgs))
	per := 1
	if c.caps["MULTIAPPEND"] && !c.cfg.noMultiAppend {
		per = len(msgs)
	}
	plus := c.caps["LITERAL+"] && !c.cfg.noLiteralPlus
	box := quote(encodeMailbox(folder))
	if c.utf8 {
		box = quote(folder) // RFC 6855 section 3: no modified UTF-7 once enabled
	}
	type unit struct{ tag, from, to int }
	var units []unit
	// Replies come in command order: when one fails, everything before the
	// failing command has its result, and nothing after it has.
	// A command whose reply has not been read is not confirmed either,
	// though it was written: the failure reaches back to the first of them.
	fail := func(from int, err error) ([]migrate.AppendResult, bool) {
		if len(units) > 0 && units[0].from < from {
			from = units[0].from
		}
		for i := from; i < len(res); i++ {
			if res[i].Err == nil {
				res[i].Err = err
			}
		}
		return res, true
	}
	if !plus {
		<-gate // no pipelining without LITERAL+: keep it simple and ordered
	}
	stopped := false // the run was stopped: what is not begun is not sent
	for from := 0; from < len(msgs) && !stopped; from += per {
		to := min(from+per, len(msgs))
		if ctx.Err() != nil {
			for j := from; j < len(msgs); j++ {
				res[j].Err = migrate.ErrNotSent
			}
			break
		}
		c.tag++
		u := unit{tag: c.tag, from: from, to: to}
		units = append(units, u)
		c.bw.WriteString("p" + strconv.Itoa(u.tag) + " APPEND " + box)
		for i := from; i < to; i++ {
			if i > from && ctx.Err() != nil {
				// End the MULTIAPPEND here: the server commits what it
				// has (RFC 3502), the rest is not sent.
				for j := i; j < len(msgs); j++ {
					res[j].Err = migrate.ErrNotSent
				}
				to, units[len(units)-1].to, stopped = i, i, true
				break
			}
			m := msgs[i]
			var sb strings.Builder
			sb.WriteString(" (" + strings.Join(m.Flags, " ") + ")")
			if !m.Date.IsZero() {
				sb.WriteString(` "` + m.Date.Format("02-Jan-2006 15:04:05 -0700") + `"`)
			}
			size := strconv.FormatInt(m.Body.Size(), 10)
			sync := !plus
			utf8 := c.utf8 && header8bit(m.Body)
			switch {
			case utf8:
				// RFC 6855 section 4: the message in a literal8 within the
				// UTF8 data item; non-synchronizing only with BINARY (RFC
				// 7888 section 3).
				sync = sync || !c.caps["BINARY"]
				if sync {
					sb.WriteString(" UTF8 (~{" + size + "}")
				} else {
					sb.WriteString(" UTF8 (~{" + size + "+}")
				}
			case sync:
				sb.WriteString(" {" + size + "}")
			default:
				sb.WriteString(" {" + size + "+}")
			}
			c.bw.WriteString(sb.String())
			c.debug("C: p" + strconv.Itoa(u.tag) + " APPEND " + box + sb.String())
			c.bw.WriteString("\r\n")
			if sync {
				if err := c.bw.Flush(); err != nil {
					return fail(from, err)
				}
				// Commands pipelined before this one answer first: their
				// replies are read now, so that none is taken for the "+".
				for len(units) > 1 {
					e := units[0]
					if err := c.finish(folder, e.tag, msgs[e.from:e.to], res[e.from:e.to]); err != nil {
						return fail(e.from, err)
					}
					units = units[1:]
				}
				l, err := c.readLine()
				if err != nil {
					return fail(from, err)
				}
				c.debug("S: " + l)
				if !strings.HasPrefix(l, "+") {
					// A refusal before the literal: this command is over.
					if tag := "p" + strconv.Itoa(u.tag) + " "; strings.HasPrefix(l, tag) {
						err := appendErr(folder, c.status(l[len(tag):]))
						for j := from; j < to; j++ {
							res[j].Err = err
						}
						units = units[:len(units)-1]
						goto next
					}
					return fail(from, fmt.Errorf("append to %s: unexpected reply %q", folder, wire.Clip(l)))
				}
			}
			if _, err := io.Copy(c.bw, m.Body.Open()); err != nil {
				return fail(from, err)
			}
			if utf8 {
				c.bw.WriteString(")")
			}
		}
		if from == 0 && plus {
			if err := c.bw.Flush(); err != nil {
				return fail(from, err)
			}
			<-gate
		}
		c.bw.WriteString("\r\n")
		if !plus {
			// Without LITERAL+ each command waits for its reply, so that
			// the next one's "+" is not mistaken.
			if err := c.bw.Flush(); err != nil {
				return fail(from, err)
			}
			if err := c.finish(folder, u.tag, msgs[from:to], res[from:to]); err != nil {
				return fail(from, err)
			}
			units = units[:len(units)-1]
		}
	next:
	}
	if err := c.bw.Flush(); err != nil {
		return fail(len(res), err)
	}
	for len(units) > 0 {
		u := units[0]
		if err := c.finish(folder, u.tag, msgs[u.from:u.to], res[u.from:u.to]); err != nil {
			return fail(u.from, err)
		}
		units = units[1:]
	}
	return res, false
}

// finish reads the tagged reply to one APPEND and fills in res: the UIDs of
// APPENDUID (RFC 4315 section 3), or the refusal. An error means the
// connection failed.
func (c *pipeConn) finish(folder string, tag int, msgs []migrate.Outgoing, res []migrate.AppendResult) error {
	rest, err := c.reply("p" + strconv.Itoa(tag))
	var no *replyError
	if errors.As(err, &no) {
		err = appendErr(folder, err)
		for i := range res {
			res[i].Err = err
		}
		return nil
	}
	if err != nil {
		return err
	}
	validity, uids := appendUID(rest)
	for i := range res {
		res[i].UIDValidity = validity
		if len(uids) == len(res) {
			res[i].UID = uids[i]
		}
	}
	return nil
}

// appendErr classifies a refusal as classify does for go-imap's errors.
func appendErr(folder string, err error) error {
	var no *replyError
	if !errors.As(err, &no) {
		return err
	}
	err = fmt.Errorf("append to %s: %w", folder, err)
	switch no.code {
	case "OVERQUOTA":
		return &migrate.Fatal{Err: fmt.Errorf("%w: %w", migrate.ErrFull, err)}
	case "NOPERM":
		return &migrate.Fatal{Err: err}
	case "UNAVAILABLE", "INUSE", "SERVERBUG", "TRYCREATE":
		return err
	}
	if passing(no.text) {
		return err
	}
	return &migrate.Permanent{Err: err, Uncoded: no.code == ""}
}

// appendUID reads "[APPENDUID validity uid-set] ..." from a tagged OK.
func appendUID(rest string) (uint32, []uint32) {
	_, text, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(strings.ToUpper(text), "[APPENDUID ") {
		return 0, nil
	}
	end := strings.IndexByte(text, ']')
	if end < 0 {
		return 0, nil
	}
	f := strings.Fields(text[1:end])
	if len(f) != 3 {
		return 0, nil
	}
	v, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return 0, nil
	}
	var uids []uint32
	for _, part := range strings.Split(f[2], ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 32)
		}
		if err1 != nil || err2 != nil || b < a || b-a > 1<<20 {
			return uint32(v), nil
		}
		for u := a; u <= b; u++ {
			uids = append(uids, uint32(u))
		}
	}
	return uint32(v), uids
}

// header8bit reports whether a message's header holds 8-bit bytes.
func header8bit(b *migrate.Body) bool {
	p := &mime.Probe{}
	io.Copy(p, io.LimitReader(b.Open(), 256<<10))
	return p.Header8bit()
}

// quote writes s as an IMAP quoted string (RFC 3501 section 4.3).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// encodeMailbox writes a folder name in modified UTF-7 (RFC 3501 section
// 5.1.3), as go-imap does for the other commands.
func encodeMailbox(name string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		raw := make([]byte, 2*len(u))
		for i, v := range u {
			raw[2*i], raw[2*i+1] = byte(v>>8), byte(v)
		}
		b.WriteByte('&')
		b.WriteString(strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(raw), "/", ","))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range name {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}
