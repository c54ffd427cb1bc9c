package imaging

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"

	"github.com/fastimage/api/internal/apperr"
)

// Tiny WebP files made with cwebp 1.x from a 3×2 gradient, since Go has no
// WebP encoder: `cwebp -lossless -exact`, `cwebp -q 80`, and `cwebp -q 80` of
// the same image with one translucent pixel (which gives VP8X + ALPH + VP8).
const (
	webpLossless3x2 = "\x52\x49\x46\x46\x2e\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x4c" +
		"\x22\x00\x00\x00\x2f\x02\x40\x00\x00\x2f\x30\x78\x02\x81\x24\xc4" +
		"\x51\x47\x1c\xe4\xf9\x0f\x16\x22\x8c\x01\x81\x00\x65\xac\x38\xe0" +
		"\x94\x88\xfe\xc7\xf2\x02"
	webpLossy3x2 = "\x52\x49\x46\x46\x52\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x20" +
		"\x46\x00\x00\x00\xf0\x01\x00\x9d\x01\x2a\x03\x00\x02\x00\x01\x40" +
		"\x26\x25\xa8\x02\x74\xba\x00\x03\x08\xf7\x8a\x00\x00\xfe\xd2\xa7" +
		"\x28\x57\xeb\xfb\x5f\xa5\x97\xff\x5c\xe1\x86\x7c\xff\xc4\xd9\xff" +
		"\x2e\xfa\x26\xd2\xf6\x14\xff\x8f\xe3\x81\xf7\xff\xe4\xdf\xf2\xdf" +
		"\x4a\xe8\x31\xf7\xff\xe4\xdf\xd5\x40\x00"
	webpLossyAlpha3x2 = "\x52\x49\x46\x46\x70\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x58" +
		"\x0a\x00\x00\x00\x10\x00\x00\x00\x02\x00\x00\x01\x00\x00\x41\x4c" +
		"\x50\x48\x07\x00\x00\x00\x00\x64\xff\xff\xff\xff\xff\x00\x56\x50" +
		"\x38\x20\x42\x00\x00\x00\xf0\x01\x00\x9d\x01\x2a\x03\x00\x02\x00" +
		"\x01\x40\x26\x25\xa8\x02\x74\xba\x00\x03\x09\x06\xfb\x80\x00\xfe" +
		"\xde\x35\xd5\x5c\x42\x38\xb9\xff\xc7\xff\xd4\x19\xff\x90\x67\xfe" +
		"\x41\x9f\x9f\xbf\xfb\xe6\xf6\x2f\xbf\xff\x26\xff\x96\xfa\x57\x41" +
		"\x8f\xbf\xff\x26\xfe\xaa\x00\x00"
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

// pngChunk returns a complete chunk with a correct CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// withPNGChunks inserts chunks right after IHDR.
func withPNGChunks(p []byte, chunks ...[]byte) []byte {
	const afterIHDR = 8 + 25
	out := append([]byte(nil), p[:afterIHDR]...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, p[afterIHDR:]...)
}

// bombPNG is a 70-byte PNG that declares w×h RGBA pixels. Its IDAT is not
// zlib data, so decoding it would fail as corrupt, not as too large.
func bombPNG(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", ihdr)...)
	b = append(b, pngChunk("IDAT", []byte("not zlib"))...)
	return append(b, pngChunk("IEND", nil)...)
}

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

func jpegSegment(marker byte, payload []byte) []byte {
	b := []byte{0xFF, marker}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)+2))
	return append(b, payload...)
}

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

// exifTIFF is an EXIF block (without "Exif\0\0") whose IFD0 holds an
// Orientation tag and a GPS IFD pointer (0x8825) to a latitude.
func exifTIFF(order binary.AppendByteOrder, orientation uint16) []byte {
	var b []byte
	if order == binary.AppendByteOrder(binary.LittleEndian) {
		b = []byte("II*\x00")
	} else {
		b = []byte("MM\x00*")
	}
	entry := func(b []byte, tag, typ uint16, count, value uint32) []byte {
		b = order.AppendUint16(b, tag)
		b = order.AppendUint16(b, typ)
		b = order.AppendUint32(b, count)
		return order.AppendUint32(b, value)
	}
	const gpsIFD = 8 + 2 + 2*12 + 4
	const gpsData = gpsIFD + 2 + 2*12 + 4
	b = order.AppendUint32(b, 8)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 0x0112) // Orientation, SHORT, inline
	b = order.AppendUint16(b, 3)
	b = order.AppendUint32(b, 1)
	b = order.AppendUint16(b, orientation)
	b = order.AppendUint16(b, 0)
	b = entry(b, 0x8825, 4, 1, gpsIFD) // GPSInfo, LONG offset
	b = order.AppendUint32(b, 0)
	b = order.AppendUint16(b, 2)
	b = entry(b, 0x0001, 2, 2, 0)       // GPSLatitudeRef: filled in below
	b = entry(b, 0x0002, 5, 3, gpsData) // GPSLatitude, 3 RATIONALs
	copy(b[gpsIFD+2+8:], "N\x00")
	b = order.AppendUint32(b, 0)
	for _, r := range [][2]uint32{{48, 1}, {51, 1}, {2904, 100}} {
		b = order.AppendUint32(b, r[0])
		b = order.AppendUint32(b, r[1])
	}
	return b
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
