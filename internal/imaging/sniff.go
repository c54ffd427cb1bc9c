package imaging

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"

	"github.com/fastimage/api/internal/apperr"
)

// SniffLen is how many leading bytes Sniff needs to tell every supported type
// apart: WebP's "RIFF", size, "WEBP".
const SniffLen = 12

// Sniff returns the content type (PNG, JPEG or WebP) that the magic number at
// the start of header announces. Give it at least SniffLen bytes when the file
// has that many.
//
// Returns UnsupportedMediaType for anything else.
func Sniff(header []byte) (string, error) {
	switch {
	case bytes.HasPrefix(header, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, nil
	case bytes.HasPrefix(header, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, nil
	case len(header) >= SniffLen && string(header[0:4]) == "RIFF" && string(header[8:12]) == "WEBP":
		return WebP, nil
	}
	return "", apperr.Errorf(UnsupportedMediaType, "Upload a PNG, JPEG or WebP image.")
}

// Probe reads only the header of the image in r (the format's own
// DecodeConfig, which stops before the pixel data) and refuses it if it
// declares more than limits.MaxPixels pixels or would take more than
// limits.MaxDecodeBytes of memory to decode, so that a decompression bomb is
// caught before anything allocates its pixels. limits.MaxBytes is not used.
//
// Returns UnsupportedMediaType, ImageTooLarge, or InvalidImage when the
// header is truncated or corrupt.
func Probe(r io.Reader, limits Limits) (Header, error) {
	h, _, err := probe(r, limits)
	return h, err
}

// probe is Probe that also returns a reader replaying the whole stream from
// its first byte: the bytes probing consumed, then the rest of r. The
// replayed part is as long as the header (for a JPEG, up to its first frame).
func probe(r io.Reader, limits Limits) (Header, io.Reader, error) {
	var seen bytes.Buffer
	src := &errReader{r: io.TeeReader(r, &seen)}
	head := make([]byte, SniffLen)
	n, err := io.ReadFull(src, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return Header{}, nil, fmt.Errorf("read image header: %w", err)
	}
	ct, err := Sniff(head[:n])
	if err != nil {
		return Header{}, nil, err
	}
	cfg, err := codecFor(ct).decodeConfig(io.MultiReader(bytes.NewReader(head[:n]), src))
	if err != nil {
		return Header{}, nil, src.explain(err)
	}
	if err := checkPixels(int64(cfg.Width), int64(cfg.Height), limits.maxPixels()); err != nil {
		return Header{}, nil, err
	}
	cost, ok := headerDecodeBytes(ct, seen.Bytes())
	if !ok {
		// DecodeConfig read a header this package cannot: assume the
		// costliest pixels (16-bit RGBA, twice over).
		cost = 16 * int64(cfg.Width) * int64(cfg.Height)
	}
	if err := checkDecodeBytes(cost, limits.maxDecodeBytes()); err != nil {
		return Header{}, nil, err
	}
	h := Header{ContentType: ct, Width: cfg.Width, Height: cfg.Height, DecodeBytes: cost}
	return h, io.MultiReader(&seen, r), nil
}

// codec is one format's decoder. Calling the decoders directly, rather than
// image.Decode, means no other format registered elsewhere in the binary (GIF,
// BMP) can slip through.
type codec struct {
	decode       func(io.Reader) (image.Image, error)
	decodeConfig func(io.Reader) (image.Config, error)
}

func codecFor(contentType string) codec {
	switch contentType {
	case PNG:
		return codec{png.Decode, png.DecodeConfig}
	case JPEG:
		return codec{jpeg.Decode, jpeg.DecodeConfig}
	default:
		return codec{webp.Decode, webp.DecodeConfig}
	}
}

// errReader remembers the first error from r other than io.EOF, so that a
// failing upload stream is not reported to the user as a corrupt image.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// explain turns a decoder's error into the error a caller should see.
func (e *errReader) explain(decodeErr error) error {
	if e.err != nil && e.err != io.ErrUnexpectedEOF {
		return fmt.Errorf("read image: %w", e.err)
	}
	return apperr.Wrap(decodeErr, InvalidImage, "The image is truncated or corrupt.")
}
