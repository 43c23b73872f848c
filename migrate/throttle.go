package migrate

import (
	"context"
	"sync"
	"time"
)

// Throttle wraps a destination so that appends go no faster than msgs
// messages and bytes bytes per second (0: no limit on that count), for
// servers that lock out busy clients and links shared with a household.
// Reading (Scan, FetchBody) is not limited.
func Throttle(d Destination, msgs float64, bytes float64) Destination {
	if msgs <= 0 && bytes <= 0 {
		return d
	}
	return &throttled{Destination: d, msgs: msgs, bytes: bytes}
}

type throttled struct {
	Destination
	msgs, bytes float64
	mu          sync.Mutex
	next        time.Time // when the next append may start
}

// slot reserves the time to send msgs and returns when they may start.
func (t *throttled) slot(msgs ...Outgoing) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	start := t.next
	if start.Before(now) {
		start = now
	}
	var cost time.Duration
	for _, m := range msgs {
		var c time.Duration
		if t.msgs > 0 {
			c = time.Duration(float64(time.Second) / t.msgs)
		}
		if t.bytes > 0 && m.Body != nil {
			c = max(c, time.Duration(float64(m.Body.Size())/t.bytes*float64(time.Second)))
		}
		cost += c
	}
	t.next = start.Add(cost)
	return start
}

// Pipe implements Pipeliner when the destination does: a batch waits for
// its slot before it is handed over, so the average rate holds.
func (t *throttled) Pipe(n int) Pipe {
	p, ok := t.Destination.(Pipeliner)
	if !ok {
		return nil
	}
	return &throttledPipe{Pipe: p.Pipe(n), t: t}
}

type throttledPipe struct {
	Pipe
	t *throttled
}

// Send hands the messages over one by one, each at its slot, so that no
// wait is longer than one message's share of the rate; done gets them back
// together.
func (p *throttledPipe) Send(ctx context.Context, folder string, msgs []Outgoing, done func([]AppendResult)) {
	res := make([]AppendResult, len(msgs))
	var mu sync.Mutex
	left := len(msgs)
	finish := func(i int, r AppendResult) {
		mu.Lock()
		res[i] = r
		left--
		last := left == 0
		mu.Unlock()
		if last {
			done(res)
		}
	}
	for i, m := range msgs {
		wait := time.NewTimer(time.Until(p.t.slot(m)))
		select {
		case <-ctx.Done():
			// Stopped while waiting for the rate: the rest is not sent.
			wait.Stop()
			for j := i; j < len(msgs); j++ {
				finish(j, AppendResult{Err: ErrNotSent})
			}
			return
		case <-wait.C:
		}
		p.Pipe.Send(ctx, folder, []Outgoing{m}, func(r []AppendResult) { finish(i, r[0]) })
	}
}

func (t *throttled) Append(ctx context.Context, folder string, m Outgoing) (Appended, error) {
	start := t.slot(m)
	if wait := time.Until(start); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return Appended{}, ctx.Err()
		case <-timer.C:
		}
	}
	return t.Destination.Append(ctx, folder, m)
}
