package mbox

import (
	"bufio"
	"bytes"
	"io"
	"time"
)

// Writer writes messages in mboxrd form: every body line matching
// ^>*From gains a '>', so that Reader gives back exactly what was written.
type Writer struct {
	w   *bufio.Writer
	err error
}

// NewWriter returns a Writer appending to w. Call Flush when done.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// FromLine formats a From_ line for sender and date, in asctime form.
func FromLine(sender string, date time.Time) string {
	if sender == "" {
		sender = "-"
	}
	return "From " + sender + " " + date.Format("Mon Jan _2 15:04:05 2006")
}

// Write appends one message under the given From_ line (without line break).
// Line breaks are written as the message has them; the message is ended with
// one if it lacks it, and followed by an empty line.
func (w *Writer) Write(from string, msg []byte) error {
	if w.err != nil {
		return w.err
	}
	eol := "\n"
	if i := bytes.IndexByte(msg, '\n'); i > 0 && msg[i-1] == '\r' {
		eol = "\r\n"
	}
	w.w.WriteString(from)
	w.w.WriteString(eol)
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		if q := bytes.TrimLeft(line, ">"); bytes.HasPrefix(q, []byte("From ")) {
			w.w.WriteByte('>')
		}
		w.w.Write(line)
		if line[len(line)-1] != '\n' {
			w.w.WriteString(eol)
		}
	}
	_, w.err = w.w.WriteString(eol)
	return w.err
}

// Flush writes any buffered data.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}
