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

func (t *throttled) Append(ctx context.Context, folder string, m Outgoing) (Appended, error) {
	t.mu.Lock()
	now := time.Now()
	start := t.next
	if start.Before(now) {
		start = now
	}
	var cost time.Duration
	if t.msgs > 0 {
		cost = time.Duration(float64(time.Second) / t.msgs)
	}
	if t.bytes > 0 && m.Body != nil {
		cost = max(cost, time.Duration(float64(m.Body.Size())/t.bytes*float64(time.Second)))
	}
	t.next = start.Add(cost)
	t.mu.Unlock()
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
