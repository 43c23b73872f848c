package migrate

import (
	"bufio"
	"bytes"
	"io"
	"os"
)

// Body is a message's content, held in memory when small and in a temporary
// file otherwise, so memory does not grow with message size.
type Body struct {
	mem  []byte
	file *os.File
	size int64
}

// Size returns the length of the content in bytes.
func (b *Body) Size() int64 { return b.size }

// Open returns a reader over the whole content. Each call starts afresh.
func (b *Body) Open() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return bytes.NewReader(b.mem)
}

// ReaderAt returns the content for reading at offsets.
func (b *Body) ReaderAt() io.ReaderAt {
	if b.file != nil {
		return b.file
	}
	return bytes.NewReader(b.mem)
}

// Release frees the content; the Body must not be used afterwards.
func (b *Body) Release() {
	if b.file != nil {
		name := b.file.Name()
		b.file.Close()
		os.Remove(name)
		b.file = nil
	}
	b.mem = nil
}

// BodyFromBytes wraps content already in memory.
func BodyFromBytes(p []byte) *Body { return &Body{mem: p, size: int64(len(p))} }

// spoolWriter fills a Body, switching from memory to a temporary file in dir
// once the content passes limit bytes.
type spoolWriter struct {
	dir   string
	limit int
	buf   []byte
	file  *os.File
	fw    *bufio.Writer // the writes come a line at a time: one syscall each otherwise
	size  int64
	hint  int64 // the size the source announced, 0 if none
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.file == nil && (len(w.buf)+len(p) > w.limit || w.hint > int64(w.limit)) {
		f, err := os.CreateTemp(w.dir, "mailmove-spool-*")
		if err != nil {
			return 0, err
		}
		w.file, w.fw = f, bufio.NewWriterSize(f, 256<<10)
		if _, err := w.fw.Write(w.buf); err != nil {
			return 0, err
		}
		w.buf = nil
	}
	w.size += int64(len(p))
	if w.file != nil {
		return w.fw.Write(p)
	}
	if w.buf == nil {
		// Sized from the source's announcement (plus room for CRs added
		// to bare LFs), so that the buffer is not grown and copied.
		size := 32 << 10
		if w.hint > 0 {
			size = int(min(w.hint+w.hint/16+256, 64<<20))
		}
		w.buf = make([]byte, 0, min(w.limit+1, size))
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// body hands over the content; the writer must not be used afterwards.
func (w *spoolWriter) body() (*Body, error) {
	b := &Body{mem: w.buf, file: w.file, size: w.size}
	if w.fw != nil {
		if err := w.fw.Flush(); err != nil {
			b.Release()
			return nil, err
		}
	}
	return b, nil
}

// abort removes any temporary file.
func (w *spoolWriter) abort() {
	(&Body{file: w.file}).Release()
}
