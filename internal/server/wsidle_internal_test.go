package server

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/gorilla/websocket"
)

// FuzzTakeControl: the idle reader parses the client's bytes before gorilla
// does, to take pings and pongs between messages (see idleReader). For any
// bytes it takes a frame only when it is a whole, final, masked ping or
// pong of at most 125 bytes, consuming exactly that frame and returning a
// ping's payload unmasked; anything else it leaves, untouched, for gorilla.
func FuzzTakeControl(f *testing.F) {
	for _, seed := range [][]byte{
		maskedFrame(websocket.PingMessage, []byte("hello")),
		maskedFrame(websocket.PongMessage, nil),
		append(maskedFrame(websocket.PingMessage, bytes.Repeat([]byte{'x'}, 125)), maskedFrame(websocket.TextMessage, []byte(`{"type":"ping"}`))...),
		maskedFrame(websocket.PingMessage, []byte("cut"))[:5],
		{0x89, 0x05, 'h', 'e', 'l', 'l', 'o'}, // unmasked
		{0x09, 0x80, 0, 0, 0, 0},              // not final
		{0x89, 0xfe, 0, 0x7e},                 // a 16-bit length
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &idleReader{br: bufio.NewReaderSize(bytes.NewReader(data), wsReadBuffer)}
		op, payload := r.takeControl()
		rest, err := io.ReadAll(r.br) // what gorilla would read next
		if err != nil || !bytes.HasSuffix(data, rest) {
			t.Fatalf("what is left is not the input's end: %v", err)
		}
		consumed := len(data) - len(rest)
		if op == 0 {
			if payload != nil || consumed != 0 {
				t.Fatalf("took nothing, yet %d bytes are gone (payload %q)", consumed, payload)
			}
			return
		}
		size := int(data[1] & 0x7f)
		if data[0] != 0x80|byte(op) || data[1]&0x80 == 0 || size > 125 || consumed != 6+size {
			t.Fatalf("took op %d, %d bytes, from a frame that is not a whole masked control frame: % x", op, consumed, data[:min(len(data), 8)])
		}
		if op == websocket.PongMessage {
			if payload != nil {
				t.Fatalf("a pong gave payload %q", payload)
			}
			return
		}
		want := make([]byte, size)
		for i := range want {
			want[i] = data[6+i] ^ data[2+i%4]
		}
		if !bytes.Equal(payload, want) {
			t.Fatalf("ping payload %q, want %q", payload, want)
		}
	})
}

// maskedFrame is a final frame of op as a client sends it, masked.
func maskedFrame(op int, payload []byte) []byte {
	mask := []byte{0x12, 0x34, 0x56, 0x78}
	frame := append([]byte{0x80 | byte(op), 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	return frame
}
