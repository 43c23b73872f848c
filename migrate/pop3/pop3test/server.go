// Package pop3test is an in-process POP3 server for tests and the demo. It
// serves a fixed list of messages correctly (dot-stuffed, CRLF), and lets a
// test script what real servers will not do: refuse a command, drop the
// connection part-way through a message, or lack UIDL.
package pop3test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Message is one message in the mailbox.
type Message struct {
	UID  string
	Data []byte // served as is, dot-stuffed; a missing final CRLF is added
}

// Server is a POP3 server on 127.0.0.1.
type Server struct {
	User, Pass   string
	Messages     []Message
	TLS          *tls.Config // implicit TLS when set, unless STLS is true
	STLS         bool        // offer STLS (TLS must be set)
	NoUIDL       bool        // answer UIDL with -ERR
	NoCAPA       bool        // answer CAPA with -ERR
	NoPipelining bool        // leave PIPELINING out of CAPA
	SASL         bool        // offer AUTH PLAIN
	// UTF8 offers RFC 6856's UTF8 and, as Courier does, serves a message
	// with 8-bit header bytes as a 7-bit stand-in to a session that did not
	// send UTF8 before logging in.
	UTF8 bool
	// Hook, when set, sees every command first. It may write its own reply
	// and return true to skip the normal handling; conn may be closed.
	Hook func(conn net.Conn, session int, cmd string) bool

	ln       net.Listener
	mu       sync.Mutex
	sessions int
	Logins   int // successful logins
	Failures int // refused logins
	Retrs    int // RETR commands answered +OK
	Tops     int // TOP commands answered +OK
	// Ahead counts commands read while the client had already sent the
	// next one (RFC 2449 pipelining seen from the server).
	Ahead int
	wg    sync.WaitGroup
	conns map[net.Conn]bool
}

// Start listens on 127.0.0.1:0 and serves until Close.
func (s *Server) Start() (addr string, err error) {
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.sessions++
			n := s.sessions
			if s.conns == nil {
				s.conns = map[net.Conn]bool{}
			}
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					c.Close()
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
				}()
				s.serve(c, n)
			}()
		}
	}()
	return s.ln.Addr().String(), nil
}

// Addr is where the server listens.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening, ends every session and waits for them.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Counts returns (logins, failures, retrs) safely.
// Aheads is how many commands the server read while the next one was
// already waiting: the client pipelined them.
func (s *Server) Aheads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Ahead
}

func (s *Server) Counts() (int, int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Logins, s.Failures, s.Retrs
}

// Stuff returns data as a POP3 multi-line body: CRLF-terminated, each line
// starting with "." doubled, ending with ".CRLF" (RFC 1939 section 3).
func Stuff(data []byte) []byte {
	var b bytes.Buffer
	if len(data) > 0 && data[0] == '.' {
		b.WriteByte('.')
	}
	for i, c := range data {
		b.WriteByte(c)
		if c == '\n' && i+1 < len(data) && data[i+1] == '.' {
			b.WriteByte('.')
		}
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func (s *Server) serve(conn net.Conn, session int) {
	if s.TLS != nil && !s.STLS {
		tc := tls.Server(conn, s.TLS)
		if tc.Handshake() != nil {
			return
		}
		conn = tc
	}
	br := bufio.NewReader(conn)
	reply := func(format string, args ...any) { fmt.Fprintf(conn, format+"\r\n", args...) }
	reply("+OK pop3test ready")
	authed := false
	user := ""
	utf8 := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if br.Buffered() > 0 {
			s.mu.Lock()
			s.Ahead++
			s.mu.Unlock()
		}
		if s.Hook != nil && s.Hook(conn, session, line) {
			continue
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		switch {
		case verb == "CAPA":
			if s.NoCAPA {
				reply("-ERR unknown command")
				continue
			}
			caps := "+OK\r\nTOP\r\nUSER\r\nRESP-CODES\r\n"
			if !s.NoPipelining {
				caps += "PIPELINING\r\n"
			}
			if !s.NoUIDL {
				caps += "UIDL\r\n"
			}
			if s.SASL {
				caps += "SASL PLAIN\r\n"
			}
			if s.UTF8 {
				caps += "UTF8 USER\r\n"
			}
			if s.STLS && s.TLS != nil {
				if _, ok := conn.(*tls.Conn); !ok {
					caps += "STLS\r\n"
				}
			}
			fmt.Fprint(conn, caps+".\r\n")
		case verb == "STLS" && s.STLS && s.TLS != nil:
			reply("+OK begin TLS")
			tc := tls.Server(conn, s.TLS)
			if tc.Handshake() != nil {
				return
			}
			conn = tc
			br = bufio.NewReader(conn)
		case verb == "QUIT":
			reply("+OK bye")
			return
		case verb == "NOOP":
			reply("+OK")
		case verb == "UTF8" && s.UTF8 && !authed:
			utf8 = true
			reply("+OK UTF8 enabled")
		case !authed && verb == "USER":
			user = arg
			reply("+OK")
		case !authed && verb == "PASS":
			authed = s.login(user, arg)
			if authed {
				reply("+OK logged in")
			} else {
				reply("-ERR [AUTH] invalid credentials")
			}
		case !authed && verb == "AUTH" && s.SASL:
			mech, resp, _ := strings.Cut(arg, " ")
			raw, _ := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if strings.EqualFold(mech, "PLAIN") && len(parts) == 3 && s.login(parts[1], parts[2]) {
				authed = true
				reply("+OK logged in")
			} else {
				reply("-ERR [AUTH] invalid credentials")
			}
		case !authed:
			reply("-ERR log in first")
		default:
			s.command(conn, reply, verb, arg, s.UTF8 && !utf8)
		}
	}
}

func (s *Server) login(user, pass string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if user == s.User && pass == s.Pass {
		s.Logins++
		return true
	}
	s.Failures++
	return false
}

func (s *Server) msg(arg string) (int, bool) {
	n, err := strconv.Atoi(arg)
	return n, err == nil && n >= 1 && n <= len(s.Messages)
}

// StandIn is what a server that downgrades serves in place of a message
// with 8-bit header bytes (Courier's words).
func StandIn(data []byte) []byte {
	return []byte("From: Courier mail server <postmaster@localhost>\r\nSubject: Cannot display Unicode content\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n" +
		"This E-mail message was determined to be Unicode-formatted but your E-mail reader does not support Unicode E-mail.\r\n" +
		"--b1\r\nContent-Type: message/global\r\n\r\n" + string(data) + "\r\n--b1--\r\n")
}

func has8bitHeader(data []byte) bool {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(data)
	}
	for _, c := range data[:end] {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func (s *Server) command(conn net.Conn, reply func(string, ...any), verb, arg string, downgrade bool) {
	serve := func(data []byte) []byte {
		if downgrade && has8bitHeader(data) {
			return StandIn(data)
		}
		return data
	}
	switch verb {
	case "STAT":
		total := 0
		for _, m := range s.Messages {
			total += len(m.Data)
		}
		reply("+OK %d %d", len(s.Messages), total)
	case "LIST":
		var b strings.Builder
		b.WriteString("+OK\r\n")
		for i, m := range s.Messages {
			fmt.Fprintf(&b, "%d %d\r\n", i+1, len(m.Data))
		}
		fmt.Fprint(conn, b.String()+".\r\n")
	case "UIDL":
		if s.NoUIDL {
			reply("-ERR command not supported")
			return
		}
		var b strings.Builder
		b.WriteString("+OK\r\n")
		for i, m := range s.Messages {
			fmt.Fprintf(&b, "%d %s\r\n", i+1, m.UID)
		}
		fmt.Fprint(conn, b.String()+".\r\n")
	case "RETR":
		n, ok := s.msg(arg)
		if !ok {
			reply("-ERR no such message")
			return
		}
		s.mu.Lock()
		s.Retrs++
		s.mu.Unlock()
		data := serve(s.Messages[n-1].Data)
		reply("+OK %d octets", len(data))
		conn.Write(Stuff(data))
	case "TOP":
		num, lines, _ := strings.Cut(arg, " ")
		n, ok := s.msg(num)
		if !ok || strings.TrimSpace(lines) != "0" {
			reply("-ERR no such message, or only TOP n 0 here")
			return
		}
		s.mu.Lock()
		s.Tops++
		s.mu.Unlock()
		data := serve(s.Messages[n-1].Data)
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 {
			end = len(data)
		} else {
			end += 4
		}
		reply("+OK")
		conn.Write(Stuff(data[:end]))
	case "RSET":
		reply("+OK")
	default:
		reply("-ERR unknown command")
	}
}
