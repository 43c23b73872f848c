package migrate

import (
	"context"
	"sync"
)

// DryRun wraps a destination so that nothing is written to it: folders that
// would be created are reported as missing, and appends succeed without
// sending anything. Reading (Scan, FetchBody) goes to the real server, so the
// decisions are the ones a real run would take.
func DryRun(d Destination) Destination { return dryDest{d} }

type dryDest struct{ Destination }

func (d dryDest) Mailbox(ctx context.Context, name string, create bool) (MailboxInfo, error) {
	return d.Destination.Mailbox(ctx, name, false)
}

func (d dryDest) Append(context.Context, string, Outgoing) (Appended, error) {
	return Appended{}, nil
}

func (d dryDest) Remove(context.Context, string, uint32, []uint32) error { return nil }

// DryRunCheckpoint wraps a checkpoint (nil for none) so that writes stay in
// memory for the length of the run and never reach the file.
func DryRunCheckpoint(c Checkpoint) Checkpoint {
	return &dryCheckpoint{inner: c, recs: map[string]Record{}, fps: map[string]string{}}
}

type dryCheckpoint struct {
	mu    sync.Mutex
	inner Checkpoint
	recs  map[string]Record
	fps   map[string]string
}

func (c *dryCheckpoint) Records(fn func(Record) error) error {
	if c.inner == nil {
		return nil
	}
	return c.inner.Records(fn)
}

func (c *dryCheckpoint) Get(id string) (Record, bool, error) {
	c.mu.Lock()
	r, ok := c.recs[id]
	c.mu.Unlock()
	if ok || c.inner == nil {
		return r, ok, nil
	}
	return c.inner.Get(id)
}

func (c *dryCheckpoint) Put(r Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs[r.ID] = r
	if r.State == Copied || r.State == Present {
		c.fps[r.Folder+"\x00"+r.Fingerprint] = r.ID
	}
	return nil
}

func (c *dryCheckpoint) ByFingerprint(folder, fp string) (string, bool, error) {
	c.mu.Lock()
	id, ok := c.fps[folder+"\x00"+fp]
	c.mu.Unlock()
	if ok || c.inner == nil {
		return id, ok, nil
	}
	return c.inner.ByFingerprint(folder, fp)
}

func (c *dryCheckpoint) Close() error {
	if c.inner == nil {
		return nil
	}
	return c.inner.Close()
}
