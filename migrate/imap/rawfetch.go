package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailmove/mailmove/internal/wire"
	"github.com/mailmove/mailmove/migrate"
)

// fetchRaw reads one message's BODY[] over a connection of mailmove's own,
// which takes a literal8 (~{n}, RFC 3516) where go-imap's decoder gives up,
// and the connection with it: Cyrus answers BODY[] of a message holding NUL
// bytes with one. The folder is examined (read-only), nothing is changed.
func (c *pipeConn) fetchRaw(folder string, uid uint32, w io.Writer) error {
	box := quote(encodeMailbox(folder))
	if c.utf8 {
		box = quote(folder)
	}
	if _, err := c.command("EXAMINE", "EXAMINE "+box); err != nil {
		return fmt.Errorf("examine %s: %w", folder, err)
	}
	c.tag++
	tag := "p" + strconv.Itoa(c.tag)
	line := tag + " UID FETCH " + strconv.FormatUint(uint64(uid), 10) + " (BODY.PEEK[])"
	c.debug("C: " + line)
	if err := c.writeLine(line); err != nil {
		return err
	}
	found := false
	for {
		l, err := wire.ReadLine(c.br, maxReply)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		c.debug("S: " + wire.Clip(l))
		if strings.HasPrefix(l, tag+" ") {
			if err := c.status(l[len(tag)+1:]); err != nil {
				return fmt.Errorf("fetch %s UID %d: %w", folder, uid, err)
			}
			if !found {
				return fmt.Errorf("%s UID %d: %w", folder, uid, migrate.ErrNoMessage)
			}
			return nil
		}
		// The literals a line announces follow it, each then the rest of
		// the line; the one after "BODY[]" is the message.
		for {
			n, ok := literalSize(l)
			if !ok {
				break
			}
			up := strings.ToUpper(l)
			body := !found && strings.HasPrefix(up, "* ") && strings.Contains(up, " FETCH ") &&
				(strings.HasSuffix(strings.TrimSuffix(up[:strings.LastIndexByte(up, '{')], "~"), "BODY[] "))
			dst := io.Discard
			if body {
				dst, found = w, true
			}
			if _, err := io.CopyN(dst, c.br, int64(n)); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			if l, err = wire.ReadLine(c.br, maxReply); err != nil {
				return err
			}
		}
	}
}

// decodeFailed reports whether go-imap could not read a server's reply (a
// form its decoder does not know), as opposed to a refusal or a network
// failure.
func decodeFailed(err error) bool {
	return err != nil && strings.Contains(err.Error(), "imapwire: ")
}

// fetchOwn is FetchBody over the destination's own connection.
func (d *Destination) fetchOwn(ctx context.Context, folder string, uid uint32, w io.Writer) error {
	if d.app == nil {
		c, err := dialPipe(ctx, d.cfg)
		if err != nil {
			return err
		}
		d.app = c
	}
	stop := context.AfterFunc(ctx, d.app.close)
	defer stop()
	err := d.app.fetchRaw(folder, uid, w)
	var no *replyError
	if err != nil && !errors.As(err, &no) && !errors.Is(err, migrate.ErrNoMessage) {
		d.app.close()
		d.app = nil
	}
	return err
}
