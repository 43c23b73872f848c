package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The upload stage. Messages are read, repaired and decided on one at a time
// by the runner, which alone touches its state; appends go out in batches,
// per destination folder and in source order, over the destination's Pipe.
// The runner takes the outcomes back between batches.
//
// Crash safety with batched state writes: the records of a batch are
// written as pending, in one transaction, before the batch is sent; their
// outcomes are written in one transaction with the next batch's. A run
// killed in between leaves them pending, and the next run looks for each at
// the destination before appending anything (reconcile).

// Batch limits: a batch costs one round trip to commit, and holds its
// in-memory bodies until the server has answered.
const (
	batchCount  = 100
	batchBytes  = 16 << 20 // spooled bodies count here
	batchMemory = 3 << 20  // but not here
	batchMaxAge = 250 * time.Millisecond
	// formingMemory bounds the bodies held in memory by the batches of all
	// folders being formed together.
	formingMemory = 2 * batchMemory
	stagedMaxLen  = 512
)

// ClaimKey names a fingerprint in a folder, for the duplicates of this run
// that the checkpoint does not show yet.
func claimKey(folder, fp string) string { return folder + "\x00" + fp }

// forming is a batch being filled.
type forming struct {
	jobs       []*job
	bytes, mem int64
	since      time.Time
}

type sentBatch struct {
	jobs []*job
	res  []AppendResult
}

// batchPutter is a Checkpoint that writes many records in one transaction.
type batchPutter interface {
	PutMany([]Record) error
}

// stage queues a record for the next flush. A flush makes every staged
// record durable at once.
func (r *runner) stage(rec Record) error {
	key := claimKey(rec.Folder, rec.Fingerprint)
	switch {
	case rec.Fingerprint == "":
	case rec.State == Copied || rec.State == Present || rec.State == Pending:
		r.claimed[key] = rec.ID
	case r.claimed[key] == rec.ID:
		delete(r.claimed, key)
	}
	r.staged = append(r.staged, rec)
	if len(r.staged) >= stagedMaxLen {
		return r.flush()
	}
	return nil
}

// put writes a record, and everything staged, durably now.
func (r *runner) put(rec Record) error {
	if err := r.stage(rec); err != nil {
		return err
	}
	return r.flush()
}

// flush writes the staged records in one transaction (one fsync).
func (r *runner) flush() error {
	if len(r.staged) == 0 {
		return nil
	}
	var err error
	if bp, ok := r.cp.(batchPutter); ok {
		err = bp.PutMany(r.staged)
	} else {
		for _, rec := range r.staged {
			if err = r.cp.Put(rec); err != nil {
				break
			}
		}
	}
	if err != nil {
		return &stopError{fmt.Errorf("write state: %w", err)}
	}
	for _, rec := range r.staged {
		// The checkpoint answers for finished messages from now on.
		if key := claimKey(rec.Folder, rec.Fingerprint); rec.State.Final() && r.claimed[key] == rec.ID {
			delete(r.claimed, key)
		}
	}
	r.staged = r.staged[:0]
	return nil
}

// enqueue decides on a message and, when it is to be appended, adds it to its
// folder's batch, which then owns it. settled means it needed no append (a
// duplicate, already there). When it neither took the job nor settled it
// (the folder could not be readied, the message is too big), the caller
// delivers it on its own, which retries and reports.
func (r *runner) enqueue(ctx context.Context, j *job) (taken, settled bool, err error) {
	if r.stopErr != nil {
		return false, false, r.stopErr
	}
	settled, err = r.prepare(ctx, j, 0)
	if settled || err != nil {
		var stop *stopError
		if errors.As(err, &stop) {
			return false, settled, err
		}
		return false, settled, nil
	}
	r.startPipe() // the folder is ready: the login works
	if r.pipe == nil {
		return false, false, nil
	}
	folder := j.rec.Folder
	if !r.opt.KeepDuplicates {
		r.claimed[claimKey(folder, j.rec.Fingerprint)] = j.rec.ID
	}
	f := r.forming[folder]
	if f == nil {
		f = &forming{since: time.Now()}
		r.forming[folder] = f
	}
	f.jobs = append(f.jobs, j)
	f.bytes += j.send.Size()
	if j.send.file == nil {
		f.mem += j.send.Size()
	}
	if len(f.jobs) >= batchCount || f.bytes >= batchBytes || f.mem >= batchMemory || time.Since(f.since) >= batchMaxAge {
		return true, false, r.submit(ctx, folder)
	}
	return true, false, r.submitStale(ctx, folder)
}

// submitStale sends the batches of other folders that have waited their
// time, and the biggest when together they hold more than formingMemory: a
// folder the source has left gets no more messages to send its batch, and
// an mbox tree of many folders would otherwise hold every folder's tail in
// memory until the end.
func (r *runner) submitStale(ctx context.Context, current string) error {
	var mem int64
	biggest := ""
	for folder, f := range r.forming {
		if folder != current && time.Since(f.since) >= batchMaxAge {
			if err := r.submit(ctx, folder); err != nil {
				return err
			}
			continue
		}
		mem += f.mem
		if biggest == "" || f.mem > r.forming[biggest].mem {
			biggest = folder
		}
	}
	if mem > formingMemory {
		return r.submit(ctx, biggest)
	}
	return nil
}

// startPipe opens the destination's own connections, once the main
// connection has logged in: with a wrong password, each of them would be one
// more refused login, and providers lock accounts after a few.
func (r *runner) startPipe() {
	if r.pipe == nil && r.pipeliner != nil {
		r.pipeConns = r.opt.Connections
		r.pipe = r.pipeliner.Pipe(r.pipeConns)
		if r.pipe == nil {
			r.pipeliner = nil // a decorator around one that cannot
		}
	}
}

// shrinkPipe halves the append connections after the server refused
// messages without a reason while several were appending (maddy's sqlite
// storage: "database is locked"); from one, appends go over the main
// connection alone. The batches in flight finish first.
func (r *runner) shrinkPipe(why error) {
	if r.pipe == nil {
		return
	}
	r.pipe.Close()
	r.pipe = nil
	n := r.pipeConns / 2
	if n == 0 {
		r.pipeliner = nil
		r.note("the server refused appends without a reason (%v) with one append connection beside the main one: "+
			"messages go one at a time over the main connection from now on", why)
		return
	}
	r.note("the server refused appends without a reason (%v) while %d connections were appending: going on with %d",
		why, r.pipeConns, n)
	r.pipeConns = n
	r.pipe = r.pipeliner.Pipe(n)
}

// submit sends a folder's batch: its records are written as pending, with
// everything else staged, before the first byte goes out.
func (r *runner) submit(ctx context.Context, folder string) error {
	f := r.forming[folder]
	delete(r.forming, folder)
	if f == nil || len(f.jobs) == 0 {
		return nil
	}
	if r.pipe == nil {
		// The pipe was given up while this batch formed: one by one.
		for _, j := range f.jobs {
			if r.stopErr == nil {
				r.keep(r.deliver(ctx, j, 0))
			}
			j.release()
		}
		return r.stopErr
	}
	msgs := make([]Outgoing, len(f.jobs))
	for i, j := range f.jobs {
		j.rec.State, j.rec.At, j.rec.Reason = Pending, r.opt.Now(), ""
		if err := r.stage(j.rec); err != nil {
			r.drop(f.jobs)
			return err
		}
		msgs[i] = Outgoing{Body: j.send, Flags: j.rec.Flags, Date: j.rec.Date}
	}
	if err := r.flush(); err != nil {
		r.drop(f.jobs)
		return err
	}
	jobs := f.jobs
	r.sent++
	r.pipe.Send(ctx, folder, msgs, func(res []AppendResult) {
		r.mu.Lock()
		r.results = append(r.results, sentBatch{jobs: jobs, res: res})
		r.mu.Unlock()
		select {
		case r.ready <- struct{}{}:
		default:
		}
	})
	return r.collect(ctx, false)
}

// drop gives up jobs never sent: they have no outcome, and the next run
// copies them.
func (r *runner) drop(jobs []*job) {
	for _, j := range jobs {
		if r.claimed[claimKey(j.rec.Folder, j.rec.Fingerprint)] == j.rec.ID {
			delete(r.claimed, claimKey(j.rec.Folder, j.rec.Fingerprint))
		}
		j.release()
	}
}

// submitAll sends every batch being formed, oldest folder first.
func (r *runner) submitAll(ctx context.Context) error {
	for len(r.forming) > 0 {
		var oldest string
		var at time.Time
		for folder, f := range r.forming {
			if oldest == "" || f.since.Before(at) {
				oldest, at = folder, f.since
			}
		}
		if err := r.submit(ctx, oldest); err != nil {
			return err
		}
	}
	return nil
}

// collect takes the outcomes of the batches that have finished, or, with
// wait, of every batch sent.
func (r *runner) collect(ctx context.Context, wait bool) error {
	for {
		r.mu.Lock()
		done := r.results
		r.results = nil
		r.mu.Unlock()
		for _, b := range done {
			r.sent--
			r.settleBatch(ctx, b)
		}
		if !wait || r.sent == 0 {
			return r.stopErr
		}
		<-r.ready
	}
}

// settleBatch records a finished batch. Messages the server did not confirm
// go through deliver, on the runner's own connection: after a refusal
// (nothing was stored: a MULTIAPPEND is all or nothing, RFC 3502) each is
// tried alone, so that only the culprit is repaired or kept; after a lost
// connection each is first looked for at the destination.
func (r *runner) settleBatch(ctx context.Context, b sentBatch) {
	paused := false
	if r.stopErr == nil {
		var ok []*job
		var apps []Appended
		for i, j := range b.jobs {
			if b.res[i].Err == nil {
				ok, apps = append(ok, j), append(apps, b.res[i].Appended)
			}
		}
		r.readBack(ctx, ok, apps)
	}
	var uncoded error // a refusal without a reason code, while several connections appended
	for i, j := range b.jobs {
		res := b.res[i]
		err := res.Err
		switch {
		case errors.Is(err, ErrNotSent):
			// Never sent (the run was stopped): not pending any more, and
			// no failure either; the next run copies it.
			j.rec.State, j.rec.Reason = NotSent, err.Error()
			r.notSent++
			r.keep(r.stage(j.rec))
		case r.stopErr != nil:
			// Stopping: a confirmed message is recorded, anything else is
			// left pending for the next run to look for.
			if err == nil {
				r.keep(r.copied(&j.rec, &j.ev, res.Appended))
			}
		case err == nil:
			r.keep(r.copied(&j.rec, &j.ev, res.Appended))
		default:
			var fatal *Fatal
			var perm *Permanent
			var auth *AuthError
			switch {
			case errors.As(err, &auth):
				if !r.pipeRefused {
					r.pipeRefused = true
					r.note("an append connection was refused a login (%v): its batches go over the main connection", err)
				}
				r.keep(r.deliver(ctx, j, 1))
			case errors.Is(err, ErrFull) && len(b.jobs) > 1:
				// A MULTIAPPEND is all or nothing: what fits goes one
				// by one, and the first that does not stops the run.
				r.keep(r.deliver(ctx, j, 0))
			case errors.As(err, &fatal):
				r.keep(&stopError{err})
			case errors.As(err, &perm):
				r.keep(r.deliver(ctx, j, 0))
				if perm.Uncoded && j.rec.State == Copied && len(j.rec.Repairs) == 0 && uncoded == nil {
					// Refused while others appended, taken alone as it
					// was: the server cannot take the parallel appends.
					uncoded = perm.Err
				}
			default:
				if !paused {
					paused = true
					clear(r.idx)
					again, perr := r.again(ctx, err, 0, r.dst.Describe()+" (checking before trying again)")
					if perr != nil {
						r.keep(perr)
					} else if !again {
						r.keep(&stopError{err})
					}
				}
				if r.stopErr == nil {
					r.keep(r.deliver(ctx, j, 1))
				}
			}
		}
		j.release()
	}
	if uncoded != nil && r.stopErr == nil {
		r.shrinkPipe(uncoded)
	}
}

// keep remembers the first error that stops the run.
func (r *runner) keep(err error) {
	if err != nil && r.stopErr == nil {
		var stop *stopError
		if !errors.As(err, &stop) {
			err = &stopError{err}
		}
		r.stopErr = err
	}
}

// closePipe ends the upload stage. After a normal end every batch is sent;
// after an error or an interruption what is still being formed is dropped
// and only what is in flight is waited for.
func (r *runner) closePipe(ctx context.Context, runErr error) error {
	if r.pipe == nil && r.sent == 0 && len(r.forming) == 0 {
		return runErr
	}
	if runErr == nil && r.stopErr == nil {
		if err := r.submitAll(ctx); err != nil {
			runErr = err
		}
	}
	if runErr != nil {
		r.keep(runErr)
	}
	for folder, f := range r.forming {
		r.drop(f.jobs)
		delete(r.forming, folder)
	}
	err := r.collect(ctx, true)
	if r.pipe != nil {
		r.pipe.Close()
		r.pipe = nil
	}
	if runErr != nil {
		return runErr
	}
	return err
}
