// Package faultproxy is a TCP proxy on 127.0.0.1 for tests: it forwards
// connections to a real server and injects the faults a real server and a
// real network produce at the worst moments: a cut at a byte offset, a
// stall, a slow link, a reply replaced by another.
package faultproxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Fault says what to do to one connection. The zero Fault forwards
// faithfully.
type Fault struct {
	// CutUp and CutDown close the connection once that many bytes went up
	// (client to server) or down (server to client); 0 means never.
	CutUp, CutDown int64
	// StallDown stops forwarding server bytes after that many, without
	// closing: the server seems frozen. 0 means never.
	StallDown int64
	// Delay holds every chunk this long in each direction, one after the
	// other (a slow link: it caps throughput too).
	Delay time.Duration
	// Latency delivers every chunk this long after it was sent, in each
	// direction, without slowing the flow: a far-away link of round trip
	// 2 × Latency and unlimited bandwidth.
	Latency time.Duration
	// Down, when set, sees every line the server sends and returns what the
	// client gets instead; cut true closes the connection after it. It is
	// for plaintext protocols.
	Down func(line []byte) (out []byte, cut bool)
	// Up is the same for the client's lines.
	Up func(line []byte) (out []byte, cut bool)
}

// Proxy forwards connections from Addr to a target.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	faults []Fault // for the next connections, in order
	always *Fault  // for every connection after those
	conns  int
	cuts   int
	stalls int
	live   []net.Conn

	upBytes   int64   // client bytes forwarded, all connections together
	totalCuts []int64 // CutUpTotal offsets still to come
	wg        sync.WaitGroup
}

// Start listens on 127.0.0.1 and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Next queues faults for the next connections, one each.
func (p *Proxy) Next(f ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, f...)
}

// Always applies f to every connection once the queued faults are used.
func (p *Proxy) Always(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.always = &f
}

// CutUpTotal cuts, for each offset, whichever connection carries the
// client byte at that offset counted over all connections together: a cut
// in the middle of the upload wherever it runs, when a client opens several
// connections in an order of its own.
func (p *Proxy) CutUpTotal(offsets ...int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.totalCuts = append(p.totalCuts, offsets...)
	slices.Sort(p.totalCuts)
}

// upTotal counts n more client bytes and returns how many of them may pass
// before a cut is due, or -1 when none is.
func (p *Proxy) upTotal(n int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.totalCuts) > 0 && p.upBytes+n >= p.totalCuts[0] {
		pass := p.totalCuts[0] - p.upBytes
		p.totalCuts = p.totalCuts[1:]
		p.upBytes += pass
		return pass
	}
	p.upBytes += n
	return -1
}

// Counts returns the connections accepted and the cuts and stalls injected.
func (p *Proxy) Counts() (conns, cuts, stalls int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.cuts, p.stalls
}

// CutAll closes every open connection now, as a server restart does.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.live {
		c.Close()
	}
	p.live = nil
	p.cuts++
}

// Close stops the proxy and every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		var f Fault
		switch {
		case len(p.faults) > 0:
			f, p.faults = p.faults[0], p.faults[1:]
		case p.always != nil:
			f = *p.always
		}
		p.conns++
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c, f)
	}
}

func (p *Proxy) serve(client net.Conn, f Fault) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.live = append(p.live, client, server)
	p.mu.Unlock()
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			server.Close()
		})
	}
	done := make(chan struct{}, 2)
	var up, down io.Writer = server, client
	if f.Latency > 0 {
		var stopUp, stopDown func()
		up, stopUp = delayed(server, f.Latency, closeBoth)
		down, stopDown = delayed(client, f.Latency, closeBoth)
		defer stopUp()
		defer stopDown()
	}
	go func() {
		p.pipe(up, client, f.CutUp, 0, f.Delay, f.Up, closeBoth, true)
		done <- struct{}{}
	}()
	go func() {
		p.pipe(down, server, f.CutDown, f.StallDown, f.Delay, f.Down, closeBoth, false)
		done <- struct{}{}
	}()
	<-done
	closeBoth()
	<-done
}

// pipe copies src to dst, applying a cut, a stall, a delay and a line
// filter.
func (p *Proxy) pipe(dst io.Writer, src io.Reader, cut, stall int64, delay time.Duration,
	filter func([]byte) ([]byte, bool), closeBoth func(), upstream bool) {
	var sent int64
	write := func(b []byte) bool {
		if delay > 0 {
			time.Sleep(delay)
		}
		if upstream {
			if pass := p.upTotal(int64(len(b))); pass >= 0 {
				dst.Write(b[:pass])
				p.mu.Lock()
				p.cuts++
				p.mu.Unlock()
				closeBoth()
				return false
			}
		}
		if stall > 0 && sent+int64(len(b)) >= stall {
			b = b[:stall-sent]
			dst.Write(b)
			p.mu.Lock()
			p.stalls++
			p.mu.Unlock()
			io.Copy(io.Discard, src) // frozen: read on, forward nothing
			return false
		}
		if cut > 0 && sent+int64(len(b)) >= cut {
			dst.Write(b[:cut-sent])
			p.mu.Lock()
			p.cuts++
			p.mu.Unlock()
			closeBoth()
			return false
		}
		if _, err := dst.Write(b); err != nil {
			return false
		}
		sent += int64(len(b))
		return true
	}
	if filter == nil {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !write(buf[:n]) {
				return
			}
			if err != nil {
				return
			}
		}
	}
	br := bufio.NewReaderSize(src, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !write(line) {
				return
			}
			continue
		}
		if len(line) > 0 {
			out, stop := filter(bytes.Clone(line))
			if !write(out) {
				return
			}
			if stop {
				p.mu.Lock()
				p.cuts++
				p.mu.Unlock()
				closeBoth()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// delayed returns a writer that hands each chunk to w latency after it was
// written, in order, without holding the writer back.
func delayed(w io.Writer, latency time.Duration, fail func()) (io.Writer, func()) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	ch := make(chan chunk, 4096)
	go func() {
		for c := range ch {
			if d := time.Until(c.at); d > 0 {
				time.Sleep(d)
			}
			if _, err := w.Write(c.b); err != nil {
				fail()
				for range ch {
				}
				return
			}
		}
	}()
	var once sync.Once
	return &delayWriter{send: func(b []byte) { ch <- chunk{time.Now().Add(latency), bytes.Clone(b)} }},
		func() { once.Do(func() { close(ch) }) }
}

type delayWriter struct{ send func([]byte) }

func (d *delayWriter) Write(b []byte) (int, error) {
	d.send(b)
	return len(b), nil
}
