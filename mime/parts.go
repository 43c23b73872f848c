package mime

import (
	"bytes"
	stdmime "mime"
	"strings"
)

// splitMessage splits a message at the end of its header: the header
// includes the empty line that ends it. With no empty line the whole message
// is header.
func splitMessage(msg []byte) (header, body []byte) {
	end := HeaderEnd(msg)
	return msg[:end], msg[end:]
}

// contentType returns the lower-cased media type and parameters of a
// header, with the RFC 2045 default when it is missing or unreadable.
func contentType(h Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", nil
	}
	t, params, err := stdmime.ParseMediaType(v)
	if err != nil && has8bit([]byte(v)) {
		// A list that does not parse only for its 8-bit bytes (an unquoted
		// name=Übersicht.pdf) is read as the header-8bit repair writes it,
		// which parses: the structure is the same before and after that
		// repair, for the repairs decided before it and for RepairTo,
		// which plans the parts before the header is encoded.
		enc, _ := encodeParams(strings.Trim(v, " \t"))
		t, params, err = stdmime.ParseMediaType(enc)
	}
	if err != nil {
		// A broken parameter list still names the type.
		t, _, _ = strings.Cut(v, ";")
		return strings.ToLower(strings.TrimSpace(t)), nil
	}
	return t, params
}

// walkParts calls leaf for every leaf part of msg (the message itself when
// it is not multipart), depth first, and rebuilds the message from what leaf
// returns. Parts leaf does not change keep their exact bytes, as do the
// preamble, the epilogue and the boundary lines. A message/rfc822 part is
// walked as a message.
//
// It sees the structure as RepairTo does, within the same bounds: after
// maxParts parts no more are looked into, and a part whose header is longer
// than partHeadMax is read by its first partHeadMax bytes and, when it is a
// leaf, left as it is.
func walkParts(msg []byte, depth int, leaf func(header, body []byte) ([]byte, []byte, bool)) ([]byte, bool) {
	nodes := 0
	return walkNodes(msg, depth, &nodes, leaf)
}

// partHeader splits a part as walkParts sees it: its header, the part of
// the header that is read, and its body.
func partHeader(msg []byte, depth int) (header, read, body []byte) {
	header, body = splitMessage(msg)
	read = header
	if depth > 0 && len(header) > partHeadMax {
		read = header[:partHeadMax]
	}
	return header, read, body
}

func walkNodes(msg []byte, depth int, nodes *int, leaf func(header, body []byte) ([]byte, []byte, bool)) ([]byte, bool) {
	*nodes++
	header, read, body := partHeader(msg, depth)
	t, params := contentType(ParseHeader(read))
	switch {
	case depth < 20 && strings.HasPrefix(t, "multipart/") && params["boundary"] != "" && *nodes < maxParts:
		delim := []byte("--" + params["boundary"])
		_, d := delimiterAt(body, delim)
		if d < 0 {
			break // no delimiter at all: a leaf
		}
		out := append(append([]byte(nil), header...), body[:d]...) // the preamble
		rest := body[d:]
		changed := false
		for len(rest) > 0 {
			// rest starts with a delimiter line.
			lineEnd := bytes.IndexByte(rest, '\n') + 1
			if lineEnd == 0 {
				lineEnd = len(rest)
			}
			line := rest[:lineEnd]
			out = append(out, line...)
			rest = rest[lineEnd:]
			if bytes.HasPrefix(line[len(delim):], []byte("--")) {
				return append(out, rest...), changed // the epilogue
			}
			// The line break before a delimiter belongs to the delimiter
			// (RFC 2046 section 5.1.1), not to the part.
			b, d := delimiterAt(rest, delim)
			if d < 0 {
				b, d = len(rest), len(rest) // an unterminated last part
			}
			newPart, ch := walkNodes(rest[:b], depth+1, nodes, leaf)
			changed = changed || ch
			out = append(out, newPart...)
			out = append(out, rest[b:d]...)
			rest = rest[d:]
		}
		return out, changed
	case depth < 20 && t == "message/rfc822" && *nodes < maxParts:
		inner, ch := walkNodes(body, depth+1, nodes, leaf)
		if !ch {
			return msg, false
		}
		return append(append([]byte(nil), header...), inner...), true
	}
	if len(read) < len(header) {
		return msg, false // a header this long is not touched
	}
	nh, nb, ch := leaf(header, body)
	if !ch {
		return msg, false
	}
	return append(append([]byte(nil), nh...), nb...), true
}

// delimiterAt finds the first delimiter line in b, at its start or after a
// line break, and returns where that line break starts and where the
// delimiter starts; -1, -1 when there is none.
func delimiterAt(b, delim []byte) (int, int) {
	if bytes.HasPrefix(b, delim) && delimiterEnds(b[len(delim):]) {
		return 0, 0
	}
	for i := 0; ; {
		j := bytes.Index(b[i:], delim)
		if j < 0 {
			return -1, -1
		}
		k := i + j
		if k > 0 && b[k-1] == '\n' && delimiterEnds(b[k+len(delim):]) {
			if k > 1 && b[k-2] == '\r' {
				return k - 2, k
			}
			return k - 1, k
		}
		i = k + 1
	}
}

// delimiterEnds reports whether what follows "--boundary" completes a
// delimiter line: "--", or optional blanks then a line break or the end.
func delimiterEnds(rest []byte) bool {
	if bytes.HasPrefix(rest, []byte("--")) {
		return true
	}
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || rest[0] == '\r' || rest[0] == '\n'
}

// setField replaces the first field named name in a raw header (with its
// continuation lines) by "name: value", or adds it before the empty line.
func setField(header []byte, name, value string) []byte {
	eol := "\r\n"
	if !bytes.Contains(header, []byte("\r\n")) && bytes.Contains(header, []byte("\n")) {
		eol = "\n"
	}
	line := name + ": " + value + eol
	out, _ := RemoveFields(header, func(n string) bool {
		return strings.EqualFold(n, name)
	})
	// Put the new field where the empty line (if any) starts.
	body := out
	end := len(body)
	switch {
	case bytes.HasSuffix(body, []byte("\r\n\r\n")):
		end -= 2
	case bytes.HasSuffix(body, []byte("\n\n")):
		end--
	case bytes.Equal(body, []byte("\r\n")) || bytes.Equal(body, []byte("\n")):
		end = 0
	}
	res := append([]byte(nil), body[:end]...)
	if len(res) > 0 && res[len(res)-1] != '\n' {
		res = append(res, eol...)
	}
	res = append(res, line...)
	res = append(res, body[end:]...)
	if end == len(body) {
		res = append(res, eol...) // the header had no empty line: it ends here
	}
	return res
}

// closeParts adds the close delimiter ("--boundary--", RFC 2046 section
// 5.1.1) to every multipart whose content ends without one, at the end of
// that content: some servers refuse such a message (maddy: "unexpected
// EOF"), and it is a truncation no reader can tell from a complete message
// anyway. A line break goes before the delimiter, so that the last part
// keeps every byte it had. It returns how many it closed.
func closeParts(msg []byte, depth int) ([]byte, int) {
	nodes := 0
	return closeNodes(msg, depth, &nodes)
}

func closeNodes(msg []byte, depth int, nodes *int) ([]byte, int) {
	*nodes++
	if depth >= 20 {
		return msg, 0
	}
	header, read, body := partHeader(msg, depth)
	t, params := contentType(ParseHeader(read))
	switch {
	case strings.HasPrefix(t, "multipart/") && params["boundary"] != "" && *nodes < maxParts:
		delim := []byte("--" + params["boundary"])
		_, d := delimiterAt(body, delim)
		if d < 0 {
			return msg, 0
		}
		out := append(append([]byte(nil), header...), body[:d]...)
		rest := body[d:]
		n := 0
		closeHere := func() {
			if len(out) > 0 && out[len(out)-1] != '\n' {
				out = append(out, "\r\n"...)
			}
			out = append(append(append(out, "\r\n"...), delim...), "--\r\n"...)
			n++
		}
		for len(rest) > 0 {
			lineEnd := bytes.IndexByte(rest, '\n') + 1
			if lineEnd == 0 {
				lineEnd = len(rest)
			}
			line := rest[:lineEnd]
			out = append(out, line...)
			rest = rest[lineEnd:]
			if bytes.HasPrefix(line[len(delim):], []byte("--")) {
				return append(out, rest...), n // closed: the epilogue follows
			}
			b, d := delimiterAt(rest, delim)
			last := d < 0
			if last {
				b, d = len(rest), len(rest)
			}
			part, k := closeNodes(rest[:b], depth+1, nodes)
			n += k
			out = append(out, part...)
			out = append(out, rest[b:d]...)
			rest = rest[d:]
			if last {
				closeHere()
				return out, n
			}
		}
		closeHere() // the message ends on an opening delimiter line
		return out, n
	case t == "message/rfc822" && *nodes < maxParts:
		inner, n := closeNodes(body, depth+1, nodes)
		if n == 0 {
			return msg, 0
		}
		return append(append([]byte(nil), header...), inner...), n
	}
	return msg, 0
}
