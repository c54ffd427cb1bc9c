// Package imaging accepts users' uploaded images: it recognises PNG, JPEG and
// WebP by their content, refuses decompression bombs from the header alone,
// strips metadata without re-encoding, and makes previews.
//
// The package never trusts a filename or a client's Content-Type: the type of
// an upload is what its first bytes say it is.
package imaging

import (
	"fmt"
	"math"
	"strconv"

	"github.com/fastimage/api/internal/apperr"
)

// The codes this package returns, beside the shared ones in apperr.
const (
	// UnsupportedMediaType means the upload is not a PNG, JPEG or WebP image
	// (or is one in a variant this service cannot read).
	UnsupportedMediaType apperr.Code = "UNSUPPORTED_MEDIA_TYPE"
	// PayloadTooLarge means the upload has more bytes than Limits.MaxBytes.
	PayloadTooLarge = apperr.PayloadTooLarge
	// ImageTooLarge means the image declares more pixels than allowed, or
	// pixels that would take more memory to decode than allowed.
	ImageTooLarge apperr.Code = "IMAGE_TOO_LARGE"
	// InvalidImage means the file is truncated or corrupt.
	InvalidImage apperr.Code = "INVALID_IMAGE"
)

// The content types Sniff recognises.
const (
	PNG  = "image/png"
	JPEG = "image/jpeg"
	WebP = "image/webp"
)

// DefaultMaxPixels is the product's pixel cap: 40 megapixels. Decoding such an
// image takes about 160 MB as RGBA, which is as much as one request may use.
const DefaultMaxPixels = 40_000_000

// Limits bounds what Process accepts.
type Limits struct {
	// MaxBytes is the largest upload, in bytes; it must be positive.
	MaxBytes int64
	// MaxPixels is the largest width × height; zero means DefaultMaxPixels.
	MaxPixels int64
	// MaxDecodeBytes is the most memory that decoding the image may take,
	// as its header tells (the pixels at their bit depth: a 16-bit PNG
	// takes twice an 8-bit one); zero means DefaultMaxDecodeBytes.
	MaxDecodeBytes int64
}

func (l Limits) maxDecodeBytes() int64 {
	if l.MaxDecodeBytes <= 0 {
		return DefaultMaxDecodeBytes
	}
	return l.MaxDecodeBytes
}

func (l Limits) maxPixels() int64 {
	if l.MaxPixels <= 0 {
		return DefaultMaxPixels
	}
	return l.MaxPixels
}

// Header is what an image's first bytes say about it.
type Header struct {
	ContentType string
	Width       int
	Height      int
	// DecodeBytes is how much memory decoding the image takes, at most.
	DecodeBytes int64
}

// Info describes the cleaned copy that Process wrote.
type Info struct {
	ContentType string
	Width       int
	Height      int
	// Bytes is the length of the cleaned copy.
	Bytes int64
	// SHA256 is the hex SHA-256 of the cleaned copy.
	SHA256 string
	// Orientation is the EXIF orientation (1–8) found in the metadata that
	// Process dropped, or 0 if there was none. The cleaned copy no longer
	// carries it and its pixels are not rotated, so a viewer shows the image
	// as stored; a caller that wants the photographer's orientation must
	// apply this value itself.
	Orientation int
}

// checkPixels refuses empty images and images over maxPixels. Width and
// height are at most 2^32 in every format, so their product fits an int64.
func checkPixels(width, height, maxPixels int64) error {
	if width <= 0 || height <= 0 {
		return apperr.Errorf(InvalidImage, "The image has no pixels.")
	}
	if width*height > maxPixels {
		return apperr.Errorf(ImageTooLarge,
			"The image is %d × %d pixels; the limit is %s megapixels.",
			width, height, strconv.FormatFloat(float64(maxPixels)/1e6, 'f', -1, 64)).
			With("maxPixels", maxPixels)
	}
	return nil
}

// checkDecodeBytes refuses an image whose decoding would take more than
// maxBytes of memory.
func checkDecodeBytes(n, maxBytes int64) error {
	if n > maxBytes {
		return apperr.Errorf(ImageTooLarge,
			"Opening this image would take %s of memory; the limit is %s. Save it with 8 bits per channel, or with fewer pixels.",
			humanBytes(n), humanBytes(maxBytes)).
			With("maxDecodeBytes", maxBytes)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return apperr.Errorf(InvalidImage, format, args...)
}

// humanBytes writes a byte limit the way a user reads it ("25 MB").
func humanBytes(n int64) string {
	const mb, kb = 1 << 20, 1 << 10
	switch {
	case n >= mb:
		return strconv.FormatFloat(math.Round(float64(n)/mb*10)/10, 'f', -1, 64) + " MB"
	case n >= kb:
		return strconv.FormatFloat(math.Round(float64(n)/kb*10)/10, 'f', -1, 64) + " KB"
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
