package imaging

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/imaging/imagingtest"
)

const (
	webpLossless3x2   = imagingtest.WebPLossless3x2
	webpLossy3x2      = imagingtest.WebPLossy3x2
	webpLossyAlpha3x2 = imagingtest.WebPLossyAlpha3x2
)

// gradient returns a w×h image; with translucent, its left half fades out.
func gradient(w, h int, translucent bool) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if translucent && x < w/2 {
				a = uint8(255 * x / w)
			}
			m.SetNRGBA(x, y, color.NRGBA{uint8(255 * x / w), uint8(255 * y / h), 128, a})
		}
	}
	return m
}

// noise returns an opaque w×h image of random pixels, which JPEG compresses
// badly: about 2 bytes a pixel at quality 100.
func noise(w, h int, seed uint64) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	rnd := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i < len(m.Pix); i += 8 {
		binary.LittleEndian.PutUint64(m.Pix[i:], rnd.Uint64()|0xFF000000FF000000)
	}
	return m
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pngChunk(typ string, data []byte) []byte { return imagingtest.PNGChunk(typ, data) }

// withPNGChunks inserts chunks right after IHDR.
func withPNGChunks(p []byte, chunks ...[]byte) []byte {
	const afterIHDR = 8 + 25
	out := append([]byte(nil), p[:afterIHDR]...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, p[afterIHDR:]...)
}

func bombPNG(w, h uint32) []byte { return imagingtest.BombPNG(w, h) }

func pngChunkTypes(t *testing.T, b []byte) []string {
	t.Helper()
	var types []string
	for i := 8; i+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[i:]))
		types = append(types, string(b[i+4:i+8]))
		i += 12 + n
	}
	return types
}

func jpegSegment(marker byte, payload []byte) []byte { return imagingtest.JPEGSegment(marker, payload) }

// withJPEGSegments inserts segments right after SOI.
func withJPEGSegments(j []byte, segs ...[]byte) []byte {
	out := append([]byte(nil), j[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, j[2:]...)
}

// jpegMarkers lists the markers from SOI up to and including SOS.
func jpegMarkers(t *testing.T, b []byte) []byte {
	t.Helper()
	markers := []byte{b[1]}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			t.Fatalf("no marker at offset %d", i)
		}
		markers = append(markers, b[i+1])
		if b[i+1] == markerSOS {
			break
		}
		i += 2 + int(binary.BigEndian.Uint16(b[i+2:]))
	}
	return markers
}

// withJPEGSize rewrites the dimensions in a JPEG's SOF0 and, when marker is
// not zero, its marker.
func withJPEGSize(t *testing.T, j []byte, w, h uint16, marker byte) []byte {
	t.Helper()
	out := append([]byte(nil), j...)
	i := bytes.Index(out, []byte{0xFF, markerSOF0})
	if i < 0 {
		t.Fatal("no SOF0")
	}
	binary.BigEndian.PutUint16(out[i+5:], h)
	binary.BigEndian.PutUint16(out[i+7:], w)
	if marker != 0 {
		out[i+1] = marker
	}
	return out
}

func exifTIFF(order binary.AppendByteOrder, orientation uint16) []byte {
	return imagingtest.ExifTIFF(order, orientation)
}

func riffChunk(fourCC string, data []byte) []byte {
	b := append([]byte(fourCC), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func webpFile(chunks ...[]byte) []byte {
	var body []byte
	for _, c := range chunks {
		body = append(body, c...)
	}
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(4+len(body)))
	b = append(b, "WEBP"...)
	return append(b, body...)
}

// vp8xChunk is a VP8X chunk with the given flags and canvas size.
func vp8xChunk(flags byte, w, h uint32) []byte {
	d := []byte{flags, 0, 0, 0}
	d = append(d, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	d = append(d, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	return riffChunk("VP8X", d)
}

func webpChunkTypes(t *testing.T, b []byte) []string {
	t.Helper()
	var types []string
	for i := 12; i+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		types = append(types, string(b[i:i+4]))
		i += 8 + n + n%2
	}
	return types
}

// mustProcess runs Process and checks that Info describes the bytes written.
func mustProcess(t *testing.T, in []byte, limits Limits) (Info, []byte) {
	t.Helper()
	var out bytes.Buffer
	info, err := Process(bytes.NewReader(in), &out, limits)
	if err != nil {
		t.Fatalf("Process: got %v, want no error", err)
	}
	sum := sha256.Sum256(out.Bytes())
	if got, want := info.SHA256, hex.EncodeToString(sum[:]); got != want {
		t.Errorf("SHA256: got %v, want %v", got, want)
	}
	if got, want := info.Bytes, int64(out.Len()); got != want {
		t.Errorf("Bytes: got %v, want %v", got, want)
	}
	return info, out.Bytes()
}

// mustDecode decodes data with the decoder for contentType.
func mustDecode(t *testing.T, contentType string, data []byte) image.Image {
	t.Helper()
	img, err := codecFor(contentType).decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode %s: got %v, want no error", contentType, err)
	}
	return img
}

func checkCode(t *testing.T, err error, want apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != want {
		t.Errorf("code: got %v, want %v (error: %v)", got, want, err)
	}
}

// testLimits are the limits tests use unless they test the limits.
func testLimits() Limits { return Limits{MaxBytes: 8 << 20, MaxPixels: DefaultMaxPixels} }
