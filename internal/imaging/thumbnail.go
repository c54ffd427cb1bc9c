package imaging

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"slices"

	"golang.org/x/image/draw"
)

// ThumbnailQuality is the JPEG quality of opaque thumbnails.
const ThumbnailQuality = 85

// Thumb is one encoded preview.
type Thumb struct {
	// ContentType is JPEG for an opaque image and PNG for one with
	// transparency, which JPEG cannot hold.
	ContentType string
	Width       int
	Height      int
	Data        []byte
}

// Thumbnail is Thumbnails with one size.
func Thumbnail(r io.Reader, maxSide int) (Thumb, error) {
	thumbs, err := Thumbnails(r, maxSide)
	if err != nil {
		return Thumb{}, err
	}
	return thumbs[0], nil
}

// Thumbnails decodes the image in r once and returns, for each of sizes in
// order, a preview whose long side is at most that many pixels. The aspect
// ratio is kept and an image is never enlarged: one already small enough is
// re-encoded at its own size. Scaling uses Catmull-Rom; each preview is
// scaled from the next larger one, which looks the same and saves scaling the
// full image again.
//
// Thumbnails reads the header first and refuses images over
// DefaultMaxPixels or DefaultMaxDecodeBytes, so it is safe even on an upload
// that has not been through Process. It does not apply EXIF orientation (Process drops EXIF and reports
// it in Info.Orientation) and the previews carry no colour profile. Animated
// WebP is not supported by the decoder and fails as InvalidImage.
//
// Returns UnsupportedMediaType, ImageTooLarge, or InvalidImage if the image
// cannot be decoded.
func Thumbnails(r io.Reader, sizes ...int) ([]Thumb, error) {
	return OrientedThumbnails(r, 1, Limits{}, sizes...)
}

// OrientedThumbnails is Thumbnails for an image whose EXIF orientation (1–8,
// as Process reports it) says how to turn it: the previews come out upright,
// since they carry no EXIF of their own. It refuses images over
// limits.MaxPixels or limits.MaxDecodeBytes (limits.MaxBytes is not used).
//
// The standard decoders return the whole image at its own bit depth (a
// 16-bit PNG as RGBA64) and none decodes at a reduced scale, so that is what
// MaxDecodeBytes bounds; the decoded image is let go as soon as the largest
// preview has been scaled from it, and the smaller ones are scaled from that
// preview.
func OrientedThumbnails(r io.Reader, orientation int, limits Limits, sizes ...int) ([]Thumb, error) {
	if len(sizes) == 0 {
		return nil, errors.New("imaging: Thumbnails needs at least one size")
	}
	for _, s := range sizes {
		if s <= 0 {
			return nil, fmt.Errorf("imaging: thumbnail size %d is not positive", s)
		}
	}
	hdr, replay, err := probe(r, limits)
	if err != nil {
		return nil, err
	}
	src := &errReader{r: replay}
	img, err := codecFor(hdr.ContentType).decode(src)
	if err != nil {
		return nil, src.explain(err)
	}
	opaque := isOpaque(img)

	// Largest first, so that each scaling starts from the smallest image that
	// is still at least as large as the target.
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })

	thumbs := make([]Thumb, len(sizes))
	b := img.Bounds()
	// Only from holds the decoded image from here on, so that it can be
	// freed once the largest preview has been scaled from it.
	from := img
	img = nil
	for _, i := range order {
		w, h := fit(b.Dx(), b.Dy(), sizes[i])
		scaled := from
		if w != from.Bounds().Dx() || h != from.Bounds().Dy() {
			dst := image.NewRGBA(image.Rect(0, 0, w, h))
			draw.CatmullRom.Scale(dst, dst.Bounds(), from, from.Bounds(), draw.Src, nil)
			scaled, from = dst, dst
		}
		t, err := encodeThumb(orient(scaled, orientation), opaque)
		if err != nil {
			return nil, err
		}
		thumbs[i] = t
	}
	return thumbs, nil
}

// fit returns the size of a width × height image scaled so that its long side
// is at most maxSide, rounding the short side and never going below 1 pixel.
func fit(width, height, maxSide int) (int, int) {
	long := max(width, height)
	if long <= maxSide {
		return width, height
	}
	scale := func(n int) int { return max(1, (n*maxSide+long/2)/long) }
	return scale(width), scale(height)
}

// isOpaque reports whether every pixel of img is fully opaque. Every image
// type the decoders return can answer; anything else is assumed to have
// transparency, which costs a PNG instead of a JPEG but loses nothing.
func isOpaque(img image.Image) bool {
	o, ok := img.(interface{ Opaque() bool })
	return ok && o.Opaque()
}

func encodeThumb(img image.Image, opaque bool) (Thumb, error) {
	var buf bytes.Buffer
	t := Thumb{Width: img.Bounds().Dx(), Height: img.Bounds().Dy()}
	if opaque {
		t.ContentType = JPEG
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: ThumbnailQuality}); err != nil {
			return Thumb{}, fmt.Errorf("encode JPEG thumbnail: %w", err)
		}
	} else {
		t.ContentType = PNG
		if err := png.Encode(&buf, img); err != nil {
			return Thumb{}, fmt.Errorf("encode PNG thumbnail: %w", err)
		}
	}
	t.Data = buf.Bytes()
	return t, nil
}

// orient turns img as EXIF orientation o says (2–8); 1, 0 or anything else
// leaves it as it is.
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		for x := range dw {
			var sx, sy int
			switch o {
			case 2: // mirrored
				sx, sy = w-1-x, y
			case 3: // upside down
				sx, sy = w-1-x, h-1-y
			case 4: // mirrored upside down
				sx, sy = x, h-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // needs a quarter turn clockwise
				sx, sy = y, h-1-x
			case 7: // transversed
				sx, sy = w-1-y, h-1-x
			case 8: // needs a quarter turn counter-clockwise
				sx, sy = w-1-y, x
			}
			dst.Set(x, y, img.At(b.Min.X+sx, b.Min.Y+sy))
		}
	}
	return dst
}
