package openai

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// maxEventLine is the longest line readEvents accepts. A streamed event
// carries a whole base64 image on one data line: a 1536×1024 PNG is a few
// MB, a 4096-pixel one tens of MB.
const maxEventLine = 64 << 20

// readEvents reads a text/event-stream from r as the HTML standard's event
// stream interpretation does and calls fn with the name ("message" when the
// stream does not give one) and data of each event: data lines are joined
// with "\n", comments (keep-alives) and the id and retry fields are ignored,
// lines may end in CRLF, LF or CR, an event is dispatched at a blank line
// only when it has data, and an unfinished event at the end is dropped. It
// stops at the first error from fn or r.
func readEvents(r io.Reader, fn func(name, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	sc.Split(scanLines)
	var name string
	var data strings.Builder
	hasData := false
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if hasData {
				if name == "" {
					name = "message"
				}
				if err := fn(name, data.String()); err != nil {
					return err
				}
			}
			name, hasData = "", false
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		}
	}
	return sc.Err()
}

// scanLines is bufio.ScanLines for the three line endings event streams
// allow: CRLF, LF and a lone CR.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		// A CR at the end of what has arrived may be the first half of a
		// CRLF: wait for the next byte before deciding.
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}
