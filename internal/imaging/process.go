package imaging

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/fastimage/api/internal/apperr"
)

// Buffer sizes for Process. They, a 64 KiB JPEG segment and a CRC are all the
// memory Process needs for PNG and JPEG, whatever the size of the file.
const (
	readBufferSize  = 64 << 10
	writeBufferSize = 64 << 10
)

// Process reads an upload once from r and writes a cleaned copy to w: the same
// compressed pixels, byte for byte, without the metadata that can identify a
// person (EXIF with GPS, XMP, IPTC, comments, text chunks, timestamps). It
// takes the dimensions and bit depth from the header and refuses a
// decompression bomb, or an image too costly to decode, before
// any pixel data is read. Nothing is decoded or re-encoded.
//
// PNG, JPEG and simple WebP are streamed in constant memory (a few hundred
// KB). An extended WebP (VP8X: alpha from lossy encoders, animation, ICC) is
// held in memory, up to limits.MaxBytes, because the RIFF header must state
// the cleaned size before the metadata at the end of the file has been seen.
//
// On error, w may already hold part of a copy, which the caller must discard.
//
// Returns UnsupportedMediaType if r is not a PNG, JPEG or WebP image,
// PayloadTooLarge as soon as r yields more than limits.MaxBytes bytes,
// ImageTooLarge if the image declares more than limits.MaxPixels pixels or
// would take more than limits.MaxDecodeBytes to decode, and
// InvalidImage if it is truncated or corrupt.
func Process(r io.Reader, w io.Writer, limits Limits) (Info, error) {
	if limits.MaxBytes <= 0 {
		return Info{}, errors.New("imaging: Limits.MaxBytes must be positive")
	}
	in := bufio.NewReaderSize(&capReader{r: r, left: limits.MaxBytes, max: limits.MaxBytes}, readBufferSize)
	head, err := in.Peek(SniffLen)
	if err != nil && err != io.EOF {
		return Info{}, readError("upload", err)
	}
	ct, err := Sniff(head)
	if err != nil {
		return Info{}, err
	}

	bw := bufio.NewWriterSize(w, writeBufferSize)
	out := &output{w: bw, sum: sha256.New()}
	var info Info
	switch ct {
	case PNG:
		info, err = stripPNG(&source{br: in, format: "PNG"}, out, limits.maxPixels(), limits.maxDecodeBytes())
	case JPEG:
		info, err = stripJPEG(&source{br: in, format: "JPEG"}, out, limits.maxPixels(), limits.maxDecodeBytes())
	case WebP:
		info, err = stripWebP(&source{br: in, format: "WebP"}, out, limits.MaxBytes, limits.maxPixels(), limits.maxDecodeBytes())
	}
	if err != nil {
		return Info{}, err
	}
	if err := bw.Flush(); err != nil {
		return Info{}, fmt.Errorf("write cleaned image: %w", err)
	}
	info.ContentType = ct
	info.Bytes = out.n
	info.SHA256 = hex.EncodeToString(out.sum.Sum(nil))
	return info, nil
}

// capReader fails with PayloadTooLarge once r has yielded more than max bytes.
// It never asks r for more than one byte past the cap, so an endless upload
// costs at most max+1 bytes of reading.
type capReader struct {
	r    io.Reader
	left int64 // bytes still allowed; negative once the cap is passed
	max  int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.tooLarge()
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n - 1, c.tooLarge()
	}
	return n, err
}

func (c *capReader) tooLarge() error { return payloadTooLarge(c.max) }

func payloadTooLarge(maxBytes int64) error {
	return apperr.Errorf(PayloadTooLarge, "The file is larger than the %s limit.", humanBytes(maxBytes)).
		With("maxBytes", maxBytes)
}

// readError turns an error from reading an upload into the error a caller
// should see: an early end is a truncated image, an *apperr.Error (the size
// cap) passes through, anything else is the transport's failure.
func readError(format string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return invalid("The %s file is truncated.", format)
	}
	if _, ok := err.(*apperr.Error); ok {
		return err
	}
	return fmt.Errorf("read %s: %w", format, err)
}

// source is the buffered upload as the format parsers see it: every read must
// succeed, and a short one means the file is truncated.
type source struct {
	br     *bufio.Reader
	format string // for messages: "PNG"
}

func (s *source) fail(err error) error { return readError(s.format, err) }

func (s *source) readFull(p []byte) error {
	if _, err := io.ReadFull(s.br, p); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *source) readByte() (byte, error) {
	b, err := s.br.ReadByte()
	if err != nil {
		return 0, s.fail(err)
	}
	return b, nil
}

// peek returns the next n bytes without consuming them; n must not exceed
// readBufferSize.
func (s *source) peek(n int) ([]byte, error) {
	p, err := s.br.Peek(n)
	if err != nil {
		return nil, s.fail(err)
	}
	return p, nil
}

// copyTo moves the next n bytes to every sink straight from the read buffer,
// so a chunk of any size passes through in buffer-sized pieces. With no sinks
// it skips the bytes.
func (s *source) copyTo(n int64, sinks ...io.Writer) error {
	for n > 0 {
		if s.br.Buffered() == 0 {
			if _, err := s.br.Peek(1); err != nil {
				return s.fail(err)
			}
		}
		k := int(min(int64(s.br.Buffered()), n))
		p, _ := s.br.Peek(k)
		for _, w := range sinks {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		_, _ = s.br.Discard(k) // cannot fail: k bytes are buffered
		n -= int64(k)
	}
	return nil
}

// output counts and hashes what Process writes, so Info describes exactly the
// bytes the caller received.
type output struct {
	w   io.Writer
	sum hash.Hash
	n   int64
}

func (o *output) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	o.sum.Write(p[:n])
	o.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write cleaned image: %w", err)
	}
	return n, nil
}
