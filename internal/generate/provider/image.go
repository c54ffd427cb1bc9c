package provider

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/imaging"
)

// PreviewMaxSide is the longest side, in pixels, of a Progress preview.
const PreviewMaxSide = 256

// PreviewQuality is the JPEG quality of previews: they are glimpses, shown
// for a second, so small beats sharp.
const PreviewQuality = 75

// DecodeImage decodes a PNG, JPEG or WebP image and returns it with its
// content type. It reads the header first and refuses an image over
// limits.MaxPixels, or one that would take more than limits.MaxDecodeBytes
// to decode, before allocating its pixels (zero values mean imaging's
// defaults).
//
// Returns imaging.UnsupportedMediaType, imaging.ImageTooLarge or
// imaging.InvalidImage.
func DecodeImage(data []byte, limits imaging.Limits) (image.Image, string, error) {
	hdr, err := imaging.Probe(bytes.NewReader(data), limits)
	if err != nil {
		return nil, "", err
	}
	var decode func(io.Reader) (image.Image, error)
	switch hdr.ContentType {
	case imaging.PNG:
		decode = png.Decode
	case imaging.JPEG:
		decode = jpeg.Decode
	default:
		decode = webp.Decode
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, "", apperr.Wrap(err, imaging.InvalidImage, "The image is truncated or corrupt.")
	}
	return img, hdr.ContentType, nil
}

// FitSize returns the size of a width × height image scaled down so that its
// long side is at most maxSide, keeping the aspect ratio and never going
// below 1 pixel. An image already small enough keeps its size.
func FitSize(width, height, maxSide int) (int, int) {
	long := max(width, height)
	if long <= maxSide {
		return width, height
	}
	scale := func(n int) int { return max(1, (n*maxSide+long/2)/long) }
	return scale(width), scale(height)
}

// EncodePreview scales img down to fit PreviewMaxSide and encodes it as a
// JPEG, flattening any transparency onto white. It returns the bytes and
// their content type.
func EncodePreview(img image.Image) ([]byte, string, error) {
	b := img.Bounds()
	w, h := FitSize(b.Dx(), b.Dy(), PreviewMaxSide)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	if w == b.Dx() && h == b.Dy() {
		draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Over)
	} else {
		draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Over, nil)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: PreviewQuality}); err != nil {
		return nil, "", fmt.Errorf("encode preview: %w", err)
	}
	return buf.Bytes(), imaging.JPEG, nil
}
